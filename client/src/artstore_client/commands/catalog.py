"""`artstore info`, `search`, `update` and `delete`: a file's attributes and the catalog."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from artstore_client.commands import _output
from artstore_client.commands._attributes import Metadata, Tags, parse_metadata
from artstore_client.commands._runtime import DEFAULT_DATA_DIR, DataDir, JsonOutput, connected, usage_error

if TYPE_CHECKING:
    from artstore_client import Client
    from artstore_client._models import FileInfo


class Order(StrEnum):
    asc = "asc"
    desc = "desc"


def info(
    file_id: Annotated[str, typer.Argument(help="the file's id")],
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Show a file's attributes."""
    with connected(data_dir) as client:
        stored = client.info(file_id)
    if json_output:
        _output.print_json(stored.raw)
        return
    _output.print_fields(
        [
            ("file_id", stored.file_id),
            ("name", stored.original_filename),
            ("size", f"{stored.size_bytes} bytes ({_output.human_size(stored.size_bytes)})"),
            ("content_type", stored.content_type),
            ("sha256", stored.sha256),
            ("element", stored.storage_element_id),
            ("status", stored.status),
            ("retention", stored.retention_policy),
            ("expires_at", stored.expires_at),
            ("created_at", stored.created_at),
            ("created_by", stored.created_by),
            ("updated_at", stored.updated_at),
            ("description", stored.description),
            ("tags", list(stored.tags)),
            ("metadata", stored.metadata),
        ]
    )


def search(
    query: Annotated[
        str | None,
        typer.Argument(help='words in the filename, description or tags; "a phrase", -excluded, a or b'),
    ] = None,
    filename: Annotated[str | None, typer.Option(help="a part of the filename")] = None,
    tag: Tags = None,
    metadata: Metadata = None,
    content_type: Annotated[str | None, typer.Option(help="type/subtype or type/*")] = None,
    element: Annotated[str | None, typer.Option(help="only files on this storage element")] = None,
    sort: Annotated[
        str | None, typer.Option(help="created_at, updated_at, size_bytes or original_filename")
    ] = None,
    order: Annotated[Order | None, typer.Option(help="[default: desc]")] = None,
    limit: Annotated[int, typer.Option(min=1, help="show at most this many files")] = 50,
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Search the files; newest first unless --sort/--order say otherwise."""
    filters: dict[str, Any] = {
        "filename": filename,
        "tags": tag,
        "metadata": parse_metadata(metadata),
        "content_type": content_type,
        "storage_element_id": element,
        "sort": sort,
        "order": order.value if order else None,
    }
    given = {name: value for name, value in filters.items() if value is not None}
    with connected(data_dir) as client:
        # One more than shown tells whether the list was cut.
        found = list(itertools.islice(_found(client, query, limit + 1, given), limit + 1))
    shown, more = found[:limit], len(found) > limit
    if json_output:
        _output.print_json([item.raw for item in shown])
        return
    rows = (
        (
            item.file_id,
            item.original_filename,
            _output.human_size(item.size_bytes),
            item.created_at,
            item.storage_element_id,
            list(item.tags),
        )
        for item in shown
    )
    _output.print_table(None, ("FILE ID", "NAME", "SIZE", "CREATED", "ELEMENT", "TAGS"), rows)
    count = f"{len(shown)} file{'' if len(shown) == 1 else 's'} shown"
    _output.print_line(f"{count}; more match (raise --limit to see them)" if more else count)


def _found(client: Client, query: str | None, wanted: int, filters: dict[str, Any]) -> Iterator[FileInfo]:
    return client.search(query, page_size=min(wanted, 100), **filters)


def update(
    file_id: Annotated[str, typer.Argument(help="the file's id")],
    description: Annotated[str | None, typer.Option(help="the new description")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", metavar="TAG", help="the new tags, replacing the old ones; repeat for several"),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            metavar="KEY=VALUE",
            help="the new metadata, replacing the old (KEY:=JSON for a number, true/false or null)",
        ),
    ] = None,
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Change a file's description, tags or metadata (on an edit or rw element); the rest stays."""
    if description is None and tag is None and metadata is None:
        usage_error("nothing to change: give --description, --tag or --metadata")
    with connected(data_dir) as client:
        changed = client.update(file_id, description=description, tags=tag, metadata=parse_metadata(metadata))
    if json_output:
        _output.print_json(changed.raw)
        return
    _output.print_line(f"updated {changed.file_id}  {changed.original_filename}")


def delete(
    file_id: Annotated[str, typer.Argument(help="the file's id")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Delete a file; only files on an edit element (temporary ones) can be deleted."""
    with connected(data_dir) as client:
        client.delete(file_id)
    _output.print_line(f"deleted {file_id}")
