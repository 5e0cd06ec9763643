"""What a search asks for (DESIGN section 7): the JSON body of POST /search, or the query of GET /search.

Every filter narrows the result; a file must pass all that are given. Only active files are ever found.

- `query`: full text over the filename, the description and the tags, read like a web search box
  (PostgreSQL's websearch_to_tsquery, configuration 'simple': no stemming, no stop words, any language).
  Words are the runs of letters and digits; every other character separates words, on both the file's side
  and the query's, so `annual_report-2024.pdf` holds the words annual, report, 2024 and pdf. Letter case is
  ignored. Words side by side must all occur (AND); `"several words"` must occur next to each other in
  that order; `-word` (a minus at the start of a word) excludes files holding it; `or` between two words
  accepts either (AND binds tighter: `a b or c` is `(a AND b) OR c`). A quote or minus anywhere else is a
  separator like any punctuation. The file's words are its filename, description and tags in that order.
- `filename`: a substring of the filename, letter case ignored; `%`, `_` and `\\` are plain characters.
- `tags`: the file has every one of them.
- `metadata`: a flat object; the file's metadata holds each key with an equal JSON value (numbers by
  value, so 1 equals 1.0; `true` is not 1; `null` matches a key set to null, not a missing key).
- `content_type`: `type/subtype` or `type/*`, compared without parameters and letter case
  (`text/plain` finds `Text/Plain; charset=utf-8`).
- `size_min`, `size_max`: bytes, both inclusive. `created_after` (inclusive), `created_before`
  (exclusive): timestamps with a time zone.
- `storage_element_id`: the element holding the file. `status`: only `active`; deleted files are never
  shown, so asking for `deleted` is refused.
- `sort` (`created_at`, `updated_at`, `size_bytes`, `original_filename`; names by code point), `order`
  (`asc`, `desc`), `limit` (default and maximum from the settings), `cursor` (`next_cursor` of the page
  before, valid only with the same filters, sort and order).
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from starlette.datastructures import QueryParams

from artstore_common.errors import BadRequest, ValidationFailed
from artstore_common.file_attributes import Tag, first_error

SortField = Literal["created_at", "updated_at", "size_bytes", "original_filename"]
SortOrder = Literal["asc", "desc"]
MetadataValue = str | int | Annotated[float, Field(allow_inf_nan=False)] | bool | None

_MEDIA_RANGE = re.compile(r"^[a-z0-9!#$&^_.+-]+/(\*|[a-z0-9!#$&^_.+-]+)$")
_MAX_BIGINT = 2**63 - 1
_LIST_PARAMETERS = frozenset({"tags"})


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str | None = Field(default=None, min_length=1, max_length=1000)
    filename: str | None = Field(default=None, min_length=1, max_length=255)
    tags: list[Tag] | None = Field(default=None, max_length=100)
    metadata: dict[str, MetadataValue] | None = Field(default=None, max_length=100)
    content_type: str | None = Field(default=None, min_length=3, max_length=255)
    size_min: int | None = Field(default=None, ge=0, le=_MAX_BIGINT)
    size_max: int | None = Field(default=None, ge=0, le=_MAX_BIGINT)
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None
    storage_element_id: str | None = Field(default=None, min_length=1, max_length=255)
    status: str | None = None
    sort: SortField = "created_at"
    order: SortOrder = "desc"
    limit: int | None = Field(default=None, ge=1)
    cursor: str | None = Field(default=None, min_length=1, max_length=4096)

    @field_validator("query")
    @classmethod
    def _has_words(cls, value: str | None) -> str | None:
        if value is not None and not any(ch.isalnum() for ch in value):
            raise ValueError("the query holds no word (letters or digits) to search for")
        return value

    @field_validator("filename")
    @classmethod
    def _composed(cls, value: str | None) -> str | None:
        # Filenames are stored in NFC (validate_filename); a decomposed query would never match them.
        return None if value is None else unicodedata.normalize("NFC", value)

    @field_validator("metadata")
    @classmethod
    def _metadata_keys(cls, value: dict[str, MetadataValue] | None) -> dict[str, MetadataValue] | None:
        for key in value or {}:
            if not key or len(key) > 128:
                raise ValueError("metadata keys are 1 to 128 characters")
        return value

    @field_validator("content_type")
    @classmethod
    def _media_range(cls, value: str | None) -> str | None:
        if value is None:
            return None
        media_type = value.split(";", 1)[0].strip().lower()
        if not _MEDIA_RANGE.match(media_type):
            raise ValueError("give a media type as type/subtype (text/plain) or type/* (image/*)")
        return media_type

    @field_validator("created_after", "created_before")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)

    @field_validator("status")
    @classmethod
    def _active_only(cls, value: str | None) -> str | None:
        if value == "deleted":
            raise ValueError("deleted files are never shown by search; leave status out or ask for 'active'")
        if value not in (None, "active"):
            raise ValueError("status can only be 'active': search shows active files only")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchRequest:
        if self.size_min is not None and self.size_max is not None and self.size_min > self.size_max:
            raise ValueError("size_min is larger than size_max: no file can match")
        if self.created_after and self.created_before and self.created_after >= self.created_before:
            raise ValueError("created_after must be earlier than created_before")
        for text in _strings(self.model_dump()):
            # PostgreSQL can hold neither; refused here rather than failing there.
            if "\x00" in text:
                raise ValueError("text must not contain NUL characters")
            if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
                raise ValueError("text must not contain unpaired UTF-16 surrogates")
        return self

    def fingerprint_source(self) -> dict[str, Any]:
        """The filters, sort and order as a cursor must see them again: what a page does not change."""
        source = self.model_dump(mode="json", exclude={"limit", "cursor", "status"})
        if self.tags is not None:
            source["tags"] = sorted(set(self.tags))
        return source


_QUERY_PARAMETERS = frozenset({"q", *SearchRequest.model_fields} - {"query"})


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def from_query_parameters(parameters: QueryParams) -> SearchRequest:
    """GET /search: the fields of POST /search as query parameters, `q` for `query`, `tags` repeated,
    `metadata` as a JSON object in one parameter."""
    document: dict[str, Any] = {}
    for name in parameters:
        if name not in _QUERY_PARAMETERS:
            allowed = ", ".join(sorted(_QUERY_PARAMETERS))
            raise ValidationFailed(f"unknown query parameter '{name}'; the parameters are: {allowed}")
        values = parameters.getlist(name)
        field = "query" if name == "q" else name
        if field in _LIST_PARAMETERS:
            document[field] = values
        elif len(values) > 1:
            raise ValidationFailed(
                f"the query parameter '{name}' was given {len(values)} times; give it once"
            )
        elif field == "metadata":
            document[field] = _json_object(values[0])
        else:
            document[field] = values[0]
    try:
        return SearchRequest.model_validate(document)
    except ValidationError as exc:
        raise ValidationFailed(first_error(exc)) from None


def _json_object(raw: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(constant)

    try:
        value = json.loads(raw, parse_constant=refuse)
    except ValueError as exc:
        raise BadRequest(f'metadata must be a JSON object such as {{"dept": "legal"}}: {exc}') from None
    if not isinstance(value, dict):
        raise ValidationFailed('metadata must be a JSON object such as {"dept": "legal"}')
    return value
