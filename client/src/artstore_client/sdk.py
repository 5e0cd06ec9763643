"""The Python SDK: `Client` talks to the admin, the ingester and the query module of one ArtStore cluster."""

from __future__ import annotations

import json
import mimetypes
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from artstore_client._http import (
    Progress,
    RetryPolicy,
    RetryWait,
    Service,
    Source,
    Total,
    UploadBody,
    jsonable,
    receive,
    replace_atomically,
    source_name,
    transfer_timeout,
)
from artstore_client._models import Account, AuditVerification, FileInfo, SearchPage, StorageElement
from artstore_client.credentials import resolve_credentials
from artstore_client.errors import ArtStoreError, ChecksumMismatch, NotConfigured
from artstore_client.settings import ClientSettings
from artstore_client.token import TokenCache

# Header values are latin-1 on the wire; ArtStore headers carry UTF-8, percent-encoded (keeps JSON readable).
_HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_RETENTIONS = ("permanent", "temporary")


class Client:
    """A synchronous client of one cluster; thread-safe; close it (or use `with`) when done."""

    def __init__(
        self,
        admin_url: str,
        client_id: str,
        client_secret: str,
        *,
        ingester_url: str | None = None,
        query_url: str | None = None,
        timeout: float = 30.0,
        scope: str | None = None,
        access_token: str | None = None,
        retries: int = 3,
        max_retry_wait: float = 30.0,
        on_retry_wait: Callable[[RetryWait], None] | None = None,
    ) -> None:
        """`retries`: how often a request refused with 429 or 503 is sent again, after the wait the service
        asks for in Retry-After (a wait over `max_retry_wait` seconds is not taken: the ApiError is raised);
        0 turns this off. A 503 NO_STORAGE_ELEMENT and uploads from iterators or pipes, which cannot be
        sent twice, are never retried. `on_retry_wait` hears of each wait before it starts."""
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        self.timeout = timeout
        retry = RetryPolicy(attempts=retries, max_wait=max_retry_wait, on_wait=on_retry_wait)
        self._admin = Service("admin", admin_url, None, timeout, retry)
        self._tokens = TokenCache(
            self._admin.http,
            client_id,
            client_secret,
            admin_url=self._admin.url,
            scope=scope,
            initial=access_token,
        )
        self._admin.tokens = self._tokens
        self._ingester = (
            Service("ingester", ingester_url, self._tokens, timeout, retry) if ingester_url else None
        )
        self._query = Service("query module", query_url, self._tokens, timeout, retry) if query_url else None

    @classmethod
    def from_environment(cls, data_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> Client:
        """ARTSTORE_ADMIN_URL, _INGESTER_URL, _QUERY_URL, _CLIENT_ID, _CLIENT_SECRET win; what is unset comes
        from <data_dir>/credentials.json (`artstore dev up` writes it; data_dir defaults to ARTSTORE_DATA_DIR,
        else .artstore/dev). Keyword arguments (those not None) go to the constructor and win over both."""
        found = resolve_credentials(ClientSettings(), Path(data_dir) if data_dir is not None else None)
        values: dict[str, Any] = {
            "admin_url": found.admin_url,
            "client_id": found.client_id,
            "client_secret": found.client_secret,
            "ingester_url": found.ingester_url,
            "query_url": found.query_url,
        }
        values.update({name: value for name, value in kwargs.items() if value is not None})
        return cls(**values)

    @property
    def admin_url(self) -> str:
        return self._admin.url

    @property
    def ingester_url(self) -> str | None:
        return self._ingester.url if self._ingester else None

    @property
    def query_url(self) -> str | None:
        return self._query.url if self._query else None

    def token(self) -> str:
        """The cached access token; a new one when less than 60 s of its life remain."""
        return self._tokens.get()

    # Files ---------------------------------------------------------------------------------------------------

    def upload(
        self,
        source: Source,
        *,
        filename: str | None = None,
        content_type: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        retention: str = "permanent",
        ttl_days: int | None = None,
        sha256: str | None = None,
        idempotency_key: str | None = None,
        progress: Progress | None = None,
    ) -> FileInfo:
        """Stream `source` (a path, a binary file object from its position, bytes, or an iterable of bytes) to
        the ingester. `progress(n)` gets the bytes of each chunk sent (and one negative call taking them back
        if the upload is sent again after a refused token). The SHA-256 of what was sent is compared with
        the stored file's: ChecksumMismatch if they differ; `sha256` makes the ingester check it first."""
        ingester = self._need(self._ingester, "ingester")
        name = filename or source_name(source)
        if not name:
            raise ValueError(
                "name the file: pass filename= when uploading from an iterator or a nameless stream"
            )
        if retention not in _RETENTIONS:
            raise ValueError(f"retention must be 'permanent' or 'temporary', not {retention!r}")
        attributes: dict[str, Any] = {"retention": {"policy": retention}}
        if ttl_days is not None:
            if retention != "temporary":
                raise ValueError("ttl_days applies only to retention 'temporary'")
            expires = datetime.now(UTC) + timedelta(days=ttl_days)
            attributes["retention"]["expires_at"] = expires.isoformat()
        if description is not None:
            attributes["description"] = description
        if tags is not None:
            attributes["tags"] = [tags] if isinstance(tags, str) else list(tags)
        if metadata is not None:
            attributes["metadata"] = dict(metadata)
        body = UploadBody(source, progress)
        headers = {
            "Content-Type": content_type or mimetypes.guess_type(name)[0] or "application/octet-stream",
            "X-Artstore-Filename": quote(name, safe=_HEADER_SAFE),
            "X-Artstore-Attributes": quote(json.dumps(attributes, ensure_ascii=False), safe=_HEADER_SAFE),
        }
        if body.size is not None:
            headers["Content-Length"] = str(body.size)
        if sha256:
            headers["X-Checksum-SHA256"] = sha256
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        stored = FileInfo.from_dict(
            ingester.json(
                "POST", "/files", headers=headers, body=body, timeout=transfer_timeout(self.timeout)
            )
        )
        sent = body.sha256.hexdigest()
        if stored.sha256 and stored.sha256 != sent:
            raise ChecksumMismatch(
                f"file {stored.file_id} was stored with sha256 {stored.sha256}, but {sent} was sent",
                expected=sent,
                actual=stored.sha256,
            )
        return stored

    def download(
        self,
        file_id: str,
        destination: str | os.PathLike[str] | IO[bytes],
        *,
        progress: Progress | None = None,
        total: Total | None = None,
    ) -> FileInfo:
        """Stream a file's content to a path (an existing directory gets the original filename) or into a
        binary file object, verifying its SHA-256. A path is written to a temporary file beside it, fsynced
        and renamed, so the final name never holds a partial or corrupt file; a file object may hold what
        arrived before a failure. `total(size)` is called once before the first byte."""
        query = self._need(self._query, "query module")
        info = self.info(file_id)
        if not isinstance(destination, str | os.PathLike):
            self._receive(query, info, destination, progress, total)
            return info
        target = Path(destination)
        if target.is_dir():
            target = target / (Path(info.original_filename).name or info.file_id)
        if not target.parent.is_dir():
            raise ArtStoreError(f"cannot write {target}: the directory {target.parent} does not exist")
        with replace_atomically(target) as handle:
            self._receive(query, info, handle, progress, total)
        return info

    def _receive(
        self, query: Service, info: FileInfo, sink: IO[bytes], progress: Progress | None, total: Total | None
    ) -> None:
        path = f"/files/{quote(info.file_id, safe='')}/content"
        actual, etag = receive(query, path, sink, progress=progress, total=total, size=info.size_bytes)
        for expected in {info.sha256, etag} - {"", None}:
            if actual != expected:
                raise ChecksumMismatch(
                    f"file {info.file_id}: the received content has sha256 {actual}, expected {expected}",
                    expected=str(expected),
                    actual=actual,
                )

    def info(self, file_id: str) -> FileInfo:
        query = self._need(self._query, "query module")
        return FileInfo.from_dict(query.json("GET", f"/files/{quote(file_id, safe='')}"))

    def update(
        self,
        file_id: str,
        *,
        description: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> FileInfo:
        """Replace the given fields (the others stay); answers the file's new attributes."""
        patch: dict[str, Any] = {}
        if description is not None:
            patch["description"] = description
        if tags is not None:
            patch["tags"] = [tags] if isinstance(tags, str) else list(tags)
        if metadata is not None:
            patch["metadata"] = dict(metadata)
        ingester = self._need(self._ingester, "ingester")
        return FileInfo.from_dict(ingester.json("PATCH", f"/files/{quote(file_id, safe='')}", json=patch))

    def delete(self, file_id: str) -> None:
        """Delete a file (only files on an `edit` element: ApiError MODE_NOT_ALLOWED otherwise)."""
        self._need(self._ingester, "ingester").json("DELETE", f"/files/{quote(file_id, safe='')}")

    def search(self, query: str | None = None, *, page_size: int = 100, **filters: Any) -> Iterator[FileInfo]:
        """Every file matching, page after page (DESIGN s.7 filters: filename, tags, metadata, content_type,
        size_min, size_max, created_after, created_before, storage_element_id, status, sort, order)."""
        cursor: str | None = None
        while True:
            page = self.search_page(query, cursor=cursor, limit=page_size, **filters)
            yield from page.items
            if not page.next_cursor or not page.items:
                return
            cursor = page.next_cursor

    def search_page(
        self, query: str | None = None, *, cursor: str | None = None, limit: int | None = None, **filters: Any
    ) -> SearchPage:
        body = {name: jsonable(value) for name, value in filters.items() if value is not None}
        if isinstance(body.get("tags"), str):
            body["tags"] = [body["tags"]]
        for name, value in (("query", query), ("cursor", cursor), ("limit", limit)):
            if value is not None:
                body[name] = value
        answer = self._need(self._query, "query module").json("POST", "/search", json=body)
        items = [FileInfo.from_dict(item) for item in answer.get("items", [])]
        return SearchPage(items, answer.get("next_cursor") or None)

    # Administration ------------------------------------------------------------------------------------------

    def storage_elements(self) -> list[StorageElement]:
        answer = self._admin.json("GET", "/storage-elements")
        return [StorageElement.from_dict(item) for item in answer.get("items", [])]

    def set_mode(self, element_id: str, target_mode: str) -> dict[str, Any]:
        path = f"/storage-elements/{quote(element_id, safe='')}/mode"
        answer: dict[str, Any] = self._admin.json("POST", path, json={"target_mode": target_mode})
        return answer

    def accounts(self, status: str | None = None) -> list[Account]:
        answer = self._admin.json("GET", "/service-accounts", params={"status": status} if status else None)
        return [Account.from_dict(item) for item in answer.get("items", [])]

    def create_account(self, name: str, role: str, *, description: str | None = None) -> tuple[Account, str]:
        """A new service account and its secret (shown this once)."""
        body = {"name": name, "role": role} | (
            {"description": description} if description is not None else {}
        )
        answer = self._admin.json("POST", "/service-accounts", json=body)
        return Account.from_dict(answer), str(answer["client_secret"])

    def delete_account(self, account_id: str) -> None:
        self._admin.json("DELETE", f"/service-accounts/{quote(account_id, safe='')}")

    def rotate_secret(self, account_id: str) -> tuple[Account, str]:
        """A new secret (shown this once); the old one keeps working for the admin's overlap period."""
        answer = self._admin.json("POST", f"/service-accounts/{quote(account_id, safe='')}/rotate-secret")
        return Account.from_dict(answer), str(answer["client_secret"])

    def audit_verify(self) -> AuditVerification:
        return AuditVerification.from_dict(self._admin.json("GET", "/audit/verify"))

    # Plumbing ------------------------------------------------------------------------------------------------

    def _need(self, service: Service | None, name: str) -> Service:
        if service is None:
            variable = "ARTSTORE_INGESTER_URL" if name == "ingester" else "ARTSTORE_QUERY_URL"
            raise NotConfigured(
                f"no {name} URL: set {variable}, or use the credentials.json of `artstore dev up`"
            )
        return service

    def close(self) -> None:
        for service in (self._admin, self._ingester, self._query):
            if service is not None:
                service.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
