"""The Python SDK against a real cluster of processes: streaming uploads and downloads, search pages, the
file life cycle, the token cache, and the errors a user sees."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from artstore_client import (
    ApiError,
    ChecksumMismatch,
    Client,
    CredentialsMissing,
    NotConfigured,
    ServiceUnreachable,
    source_size,
)
from artstore_common.embedded import free_port
from tests.client.conftest import cluster_env
from tests.support.cluster import Cluster
from tests.support.infra import Infra, own_namespace
from tests.support.processes import AdminModule, admin_module

if TYPE_CHECKING:
    from tests.support.issuer import TestIssuer

CHUNK = 256 * 1024


def _tokens_issued(cluster: Cluster, account_id: str) -> int:
    """The admin's audit records of tokens issued to one account (read as the bootstrap account)."""
    reply = httpx.get(
        f"{cluster.admin.url}/api/v1/audit",
        params={"action": "token.issued", "actor": account_id, "limit": 1000},
        headers={"Authorization": f"Bearer {cluster.admin.token()}"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    return len(reply.json()["items"])


def _only_file(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


class _RecordedReads(io.RawIOBase):
    """A binary file object that records how much each read asked for."""

    def __init__(self, inner: io.BufferedReader) -> None:
        self.inner = inner
        self.name = inner.name
        self.sizes: list[int] = []

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self.inner.seek(offset, whence)

    def tell(self) -> int:
        return self.inner.tell()

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(-1 if size is None else size)
        return self.inner.read(size)


@pytest.fixture(scope="module")
def payload() -> bytes:
    return os.urandom(3 * CHUNK + 12345)  # several chunks and a ragged end


@pytest.fixture(scope="module")
def other_admin(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminModule]:
    """A second admin of its own (own keys, tokens living 60 s): its tokens are strangers to `cluster`."""
    schema = f"admin_{uuid.uuid4().hex[:10]}"
    admin = admin_module(
        database_url=infra.database_url,
        redis_url=infra.redis_url,
        redis_namespace=own_namespace("sdk"),
        log_dir=tmp_path_factory.mktemp("other-admin"),
        name=schema,
        schema=schema,
        token_lifetime_seconds=60,
    )
    admin.start()
    yield admin
    admin.stop()


def test_upload_from_path_file_and_iterator_downloads_the_same_bytes(
    client: Client, payload: bytes, tmp_path: Path
) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    sent: list[int] = []
    from_path = client.upload(source, tags=["sdk-roundtrip"], progress=sent.append)
    assert sum(sent) == len(payload) == source_size(source)
    with source.open("rb") as handle:
        reads = _RecordedReads(handle)
        from_file = client.upload(reads, description="from a file object")
    assert reads.sizes
    assert max(reads.sizes) <= CHUNK
    assert -1 not in reads.sizes
    chunks = (payload[i : i + 100_000] for i in range(0, len(payload), 100_000))
    from_iterator = client.upload(chunks, filename="streamed name é.bin", metadata={"origin": "iterator"})

    assert from_path.original_filename == from_file.original_filename == "source.bin"
    assert from_iterator.original_filename == "streamed name é.bin"
    assert from_iterator.metadata == {"origin": "iterator"}
    assert from_file.description == "from a file object"
    for stored in (from_path, from_file, from_iterator):
        assert (stored.size_bytes, stored.sha256) == (len(payload), digest)
        received: list[int] = []
        totals: list[int | None] = []
        out = tmp_path / "out" / stored.file_id
        out.parent.mkdir(exist_ok=True)
        info = client.download(stored.file_id, out, progress=received.append, total=totals.append)
        assert out.read_bytes() == payload
        assert info.sha256 == digest
        assert sum(received) == len(payload)
        assert totals == [len(payload)]
        assert out.name in _only_file(out.parent)
        assert not any(n.endswith(".part") for n in _only_file(out.parent))
        sink = io.BytesIO()
        client.download(stored.file_id, sink)
        assert hashlib.sha256(sink.getvalue()).hexdigest() == digest


def test_download_into_a_directory_uses_the_original_name_and_an_empty_file_works(
    client: Client, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    sent: list[int] = []
    stored = client.upload(empty, progress=sent.append)
    assert (stored.size_bytes, stored.content_type) == (0, "text/plain")
    assert stored.sha256 == hashlib.sha256(b"").hexdigest()
    assert sum(sent) == 0
    target = tmp_path / "downloads"
    target.mkdir()
    client.download(stored.file_id, target)
    assert _only_file(target) == ["empty.txt"]
    assert (target / "empty.txt").read_bytes() == b""


def test_search_walks_every_page_and_finds_each_file_once(client: Client) -> None:
    tag = f"sdk-search-{uuid.uuid4().hex[:8]}"
    made = {
        client.upload(f"file {n}".encode(), filename=f"page-{n}.txt", tags=[tag]).file_id for n in range(5)
    }
    found = [item.file_id for item in client.search(tags=[tag], page_size=2)]
    assert sorted(found) == sorted(made)  # each exactly once, over three pages
    first = client.search_page(tags=[tag], limit=2, sort="original_filename", order="asc")
    assert [item.original_filename for item in first.items] == ["page-0.txt", "page-1.txt"]
    assert first.next_cursor is not None
    by_text = list(client.search("page", tags=tag, page_size=10))
    assert {item.file_id for item in by_text} == made


def test_info_update_delete_round_trip(client: Client, cluster: Cluster) -> None:
    temporary = client.upload(b"short-lived", filename="temp.txt", retention="temporary", ttl_days=2)
    assert temporary.storage_element_id == cluster.elements["edit"].element_id
    assert temporary.retention_policy == "temporary"
    assert temporary.expires_at is not None
    changed = client.update(temporary.file_id, description="edited", tags=["a", "b"], metadata={"n": 1})
    assert (changed.description, changed.tags, changed.metadata) == ("edited", ("a", "b"), {"n": 1})
    assert client.info(temporary.file_id).file_id == temporary.file_id
    client.delete(temporary.file_id)
    with pytest.raises(ApiError) as gone:
        client.info(temporary.file_id)
    assert gone.value.status == 404

    permanent = client.upload(b"kept", filename="kept.txt")
    assert permanent.storage_element_id == cluster.elements["rw"].element_id
    with pytest.raises(ApiError) as refused:
        client.delete(permanent.file_id)
    assert (refused.value.status, refused.value.code) == (409, "MODE_NOT_ALLOWED")
    assert client.info(permanent.file_id).sha256 == hashlib.sha256(b"kept").hexdigest()


def test_one_token_serves_many_calls(client: Client, cluster: Cluster) -> None:
    account, secret = client.create_account(f"sdk-reuse-{uuid.uuid4().hex[:6]}", "USER")
    before = _tokens_issued(cluster, account.id)
    with cluster.sdk({"client_id": account.client_id, "client_secret": secret}) as user:
        stored = user.upload(b"reuse", filename="reuse.txt")
        user.info(stored.file_id)
        list(user.search(filename="reuse.txt", page_size=5))
        user.storage_elements()
        assert user.token() == user.token()
    assert _tokens_issued(cluster, account.id) == before + 1


def test_a_token_near_its_end_is_replaced(other_admin: AdminModule) -> None:
    # This admin's tokens live 60 s: each has less than the 60 s margin left, so each call gets a new one.
    with Client(other_admin.url, other_admin.client_id, other_admin.client_secret) as client:
        first = client.token()
        elements = client.storage_elements()
        second = client.token()
    assert elements == []
    assert first != second


def test_a_refused_token_is_replaced_once_and_the_call_repeated(
    cluster: Cluster, admin_account: dict[str, str], issuer: TestIssuer, tmp_path: Path
) -> None:
    # A well-formed token with an hour to live, signed by a key the cluster does not know: refused (401).
    stranger = issuer.token(lifetime=3600)
    before = _tokens_issued(cluster, admin_account["id"])
    source = tmp_path / "again.bin"
    source.write_bytes(b"sent twice" * 1000)
    with cluster.sdk(admin_account, access_token=stranger) as client:
        assert client.token() == stranger
        progress: list[int] = []
        stored = client.upload(source, progress=progress.append)  # a path can be sent again
        assert sum(progress) == source.stat().st_size
        assert client.info(stored.file_id).size_bytes == source.stat().st_size
        assert client.token() != stranger
    assert _tokens_issued(cluster, admin_account["id"]) == before + 1

    with cluster.sdk(admin_account, access_token=stranger) as client:
        with pytest.raises(ApiError) as refused:  # an iterator cannot be sent again
            client.upload(iter([b"once"]), filename="once.txt")
        assert refused.value.status == 401
        assert client.info(stored.file_id).file_id == stored.file_id  # the next call has a good token


def test_api_errors_carry_status_code_and_detail(client: Client, cluster: Cluster) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(ApiError) as not_found:
        client.info(missing)
    error = not_found.value
    assert (error.status, error.code) == (404, "NOT_FOUND")
    assert error.detail
    assert error.request_id
    assert str(error) == f"NOT_FOUND: {error.detail} (HTTP 404)"
    assert "\n" not in str(error)

    with cluster.sdk(cluster.account("READONLY")) as readonly, pytest.raises(ApiError) as forbidden:
        readonly.upload(b"not allowed", filename="no.txt")
    assert (forbidden.value.status, forbidden.value.code) == (403, "INSUFFICIENT_SCOPE")
    assert "files:write" in forbidden.value.detail

    nobody = {"client_id": "nobody-here", "client_secret": "wrong"}
    with cluster.sdk(nobody) as stranger, pytest.raises(ApiError) as refused:
        stranger.token()
    assert (refused.value.status, refused.value.code) == (401, "invalid_client")

    edit = cluster.elements["edit"].element_id
    with pytest.raises(ApiError) as transition:
        client.set_mode(edit, "ro")
    assert (transition.value.status, transition.value.code) == (409, "INVALID_TRANSITION")


def test_accounts_elements_and_audit(client: Client, cluster: Cluster) -> None:
    account, secret = client.create_account(
        f"sdk-admin-{uuid.uuid4().hex[:6]}", "AUDITOR", description="temp"
    )
    assert (account.role, account.status, account.description, account.is_system) == (
        "AUDITOR",
        "active",
        "temp",
        False,
    )
    assert account.id in {listed.id for listed in client.accounts()}
    rotated, new_secret = client.rotate_secret(account.id)
    assert rotated.id == account.id
    assert new_secret != secret
    with cluster.sdk({"client_id": account.client_id, "client_secret": new_secret}) as auditor:
        assert auditor.audit_verify().valid
    client.delete_account(account.id)
    assert account.id not in {listed.id for listed in client.accounts()}
    assert account.id in {listed.id for listed in client.accounts(status="deleted")}

    elements = {element.id: element for element in client.storage_elements()}
    for mode in ("edit", "rw"):
        element = elements[cluster.elements[mode].element_id]
        assert (element.mode, element.url) == (mode, cluster.elements[mode].url)
    verification = client.audit_verify()
    assert verification.valid
    assert verification.checked > 0
    assert verification.first_broken is None


def test_unreachable_services_are_named(cluster: Cluster, admin_account: dict[str, str]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with Client(closed, "someone", "secret", timeout=5) as nowhere, pytest.raises(ServiceUnreachable) as exc:
        nowhere.token()
    assert closed in str(exc.value)
    assert "admin" in str(exc.value)
    assert "artstore dev up" in str(exc.value)
    # No ingester URL: an upload must say what is missing.
    with cluster.sdk(admin_account, query_url=closed, ingester_url=None, timeout=5) as client:
        with pytest.raises(ServiceUnreachable) as query:
            client.info(str(uuid.uuid4()))
        assert query.value.url == closed
        assert "query module" in str(query.value)
        with pytest.raises(NotConfigured, match="ARTSTORE_INGESTER_URL"):
            client.upload(b"x", filename="x.txt")


def test_from_environment_reads_the_credentials_file_and_the_environment_wins(
    cluster: Cluster, admin_account: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in cluster_env(cluster, admin_account):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ARTSTORE_DATA_DIR", raising=False)
    with pytest.raises(CredentialsMissing) as missing:
        Client.from_environment(tmp_path)
    message = str(missing.value)
    assert "artstore dev up" in message
    assert "ARTSTORE_ADMIN_URL" in message
    assert str(tmp_path) in message

    document = {
        "admin_url": cluster.admin.url,
        "ingester_url": cluster.ingester.url,
        "query_url": f"http://127.0.0.1:{free_port()}",  # stale: the environment names the right one
        "client_id": admin_account["client_id"],
        "client_secret": admin_account["client_secret"],
    }
    (tmp_path / "credentials.json").write_text(json.dumps(document))
    monkeypatch.setenv("ARTSTORE_QUERY_URL", cluster.query.url)
    monkeypatch.setenv("ARTSTORE_DATA_DIR", str(tmp_path))
    with Client.from_environment() as client:
        assert (client.admin_url, client.query_url) == (cluster.admin.url, cluster.query.url)
        stored = client.upload(b"configured", filename="env.txt")
        assert client.info(stored.file_id).original_filename == "env.txt"
    monkeypatch.setenv("ARTSTORE_CLIENT_SECRET", "not-the-secret")
    with Client.from_environment(tmp_path) as wrong, pytest.raises(ApiError) as refused:
        wrong.token()
    assert refused.value.code == "invalid_client"


class _CorruptQuery(BaseHTTPRequestHandler):
    """A query module that lies: attributes of one content, then other (or too few) bytes."""

    good = b"the content the catalog describes"
    mode = "corrupt"

    def do_GET(self) -> None:
        file_id = self.path.split("/")[4]
        if not self.path.endswith("/content"):
            body = json.dumps(
                {
                    "file_id": file_id,
                    "original_filename": "lie.txt",
                    "size_bytes": len(self.good),
                    "sha256": hashlib.sha256(self.good).hexdigest(),
                    "storage_element_id": "se-fake",
                }
            ).encode()
            self._reply(body, len(body))
        elif self.mode == "corrupt":
            bad = b"X" * len(self.good)
            self._reply(bad, len(bad), etag=hashlib.sha256(self.good).hexdigest())
        else:
            self._reply(self.good[:5], len(self.good))  # promises more than it sends, then hangs up

    def _reply(self, body: bytes, length: int, etag: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        if etag:
            self.send_header("ETag", f'"{etag}"')
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test judges the client's result, not this stand-in's access log."""


@pytest.mark.parametrize("mode", ["corrupt", "truncated"])
def test_a_failed_download_leaves_the_final_name_untouched(
    mode: str, cluster: Cluster, admin_account: dict[str, str], tmp_path: Path
) -> None:
    handler = type("Handler", (_CorruptQuery,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target = tmp_path / "report.txt"
    target.write_bytes(b"the previous version")
    try:
        fake = f"http://127.0.0.1:{server.server_address[1]}"
        with cluster.sdk(admin_account, query_url=fake, timeout=5) as client:
            expected = ChecksumMismatch if mode == "corrupt" else ServiceUnreachable
            with pytest.raises(expected):
                client.download(str(uuid.uuid4()), target)
    finally:
        server.shutdown()
        server.server_close()
    assert _only_file(tmp_path) == ["report.txt"]
    assert target.read_bytes() == b"the previous version"
