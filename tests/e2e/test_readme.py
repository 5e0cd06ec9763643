"""The README's curl examples, run for real against a fresh cluster so that they cannot drift."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.e2e._devup import DevUp
from tests.support.readme import code_blocks, marked_section

pytestmark = pytest.mark.e2e

HELLO = b"Hello, ArtStore!\n"


def readme_script() -> str:
    blocks = code_blocks(marked_section("e2e-curl-examples"), "bash")
    assert blocks, "no ```bash blocks between the README's markers"
    return "\n".join(blocks)


def _json_lines(output: str) -> list[dict]:
    documents = []
    for line in output.splitlines():
        if line.startswith("{"):
            documents.append(json.loads(line))
    return documents


def test_readme_examples_cover_the_element_api() -> None:
    script = readme_script()
    for needle in (
        "artstore token",
        "/api/v1/auth/token",
        "-X PUT",
        "X-Artstore-Filename",
        "X-Artstore-Attributes",
        "X-Checksum-SHA256",
        "Range: bytes=",
        "-I ",
        "If-None-Match",
        "/attributes",
        "-X PATCH",
        "-X DELETE",
        "/api/v1/files?",
        "/api/v1/info",
        "/api/v1/storage-elements",
        "/api/v1/service-accounts",
        "/api/v1/audit/verify",
        "/mode",
        "$INGESTER/api/v1/files",
        "$QUERY/api/v1/search",
        "/content",
        "Idempotency-Key",
        '-F "file=@',
        "/api/v1/maintenance/reconcile",
        "/health/live",
        "/health/ready",
        "/metrics",
    ):
        assert needle in script, needle


def test_readme_curl_examples_work(cluster: DevUp, tmp_path: Path) -> None:
    env = {
        **cluster.env,
        "ARTSTORE_ADMIN_URL": cluster.ready["admin_url"],
        "ARTSTORE_INGESTER_URL": cluster.ready["ingester_url"],
        "ARTSTORE_QUERY_URL": cluster.ready["query_url"],
        "ARTSTORE_URL_SE_EDIT": cluster.element_url("se-edit"),
        "ARTSTORE_URL_SE_RW": cluster.element_url("se-rw"),
        "ARTSTORE_DATA_DIR": str(cluster.data_dir),
        "ARTSTORE_CLIENT_ID": cluster.ready["client_id"],
        "ARTSTORE_CLIENT_SECRET": cluster.ready["client_secret"],
    }
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_script()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout
    assert result.returncode == 0, f"stdout:\n{output}\nstderr:\n{result.stderr}"
    sha = hashlib.sha256(HELLO).hexdigest()
    documents = _json_lines(output)

    token_reply, jwks = documents[0], documents[1]
    assert token_reply["token_type"] == "Bearer"
    assert jwks["keys"][0]["alg"] == "RS256"

    uploaded = documents[2]
    assert uploaded["sha256"] == sha
    assert uploaded["original_filename"] == "hello.txt"
    assert uploaded["tags"] == ["demo"]
    assert uploaded["metadata"] == {"author": "Ada"}
    assert uploaded["storage_element_id"] == "se-rw"
    file_id = uploaded["file_id"]

    assert HELLO.decode() in output
    assert "Hello (HTTP 206)" in output
    head = output.lower()
    assert f'etag: "{sha}"' in head
    assert "accept-ranges: bytes" in head
    assert "If-None-Match: HTTP 304" in output

    attributes, patched, listing = documents[3], documents[4], documents[5]
    assert attributes["description"] == "a greeting"
    assert patched["tags"] == ["demo", "patched"]
    assert patched["metadata"] == {"author": "Ada", "reviewed": True}
    assert patched["description"] == "a greeting"
    assert [item["file_id"] for item in listing["items"]] == [file_id]

    refused_delete, deleted = documents[6], documents[7]
    assert refused_delete["status"] == 409
    assert refused_delete["code"] == "MODE_NOT_ALLOWED"
    assert deleted["deleted"] is True
    assert "after delete: HTTP 404" in output

    info, reconcile, live, ready = documents[8], documents[9], documents[10], documents[11]
    assert info["id"] == "se-rw"
    assert info["mode"] == "rw"
    assert info["file_count"] == 1
    assert reconcile["consistent"] is True
    assert live["status"] == "alive"
    assert ready["status"] == "ready"
    assert re.search(r'^artstore_storage_files\{element="se-rw"\} 1\.0$', output, re.M)

    registry, account, reader_token, audit, chain = documents[12:17]
    registered = {element["id"]: element for element in registry["items"]}
    assert {(key, registered[key]["mode"], registered[key]["status"]) for key in registered} == {
        ("se-edit", "edit", "online"),
        ("se-rw", "rw", "online"),
    }
    assert account["role"] == "READONLY"
    assert account["client_secret"]
    assert reader_token["token_type"] == "Bearer"
    assert reader_token["scope"] == "files:read storage:read"
    assert [item["action"] for item in audit["items"]]
    assert chain["valid"] is True
    assert chain["checked"] >= 1

    notes, scan, reviewed, scan_deleted = documents[17:21]
    assert notes["original_filename"] == "notes.txt"
    assert notes["storage_element_id"] == "se-rw"
    assert notes["sha256"] == sha
    assert re.search(r"^idempotent-replayed: true\s*$", output, re.M | re.I)
    assert scan["storage_element_id"] == "se-edit"
    assert scan["tags"] == ["demo", "scan"]
    assert scan["retention"]["policy"] == "temporary"
    assert reviewed["description"] == "a reviewed scan"
    assert scan_deleted["deleted"] is True

    found, found_by_get = documents[21], documents[22]
    assert [item["file_id"] for item in found["items"]] == [notes["file_id"]]
    assert found["next_cursor"] is None
    assert found_by_get == found
    assert re.search(r"^x-artstore-cache: L[1-4]\s*$", output, re.M | re.I)
    assert "Hello (through the query module)" in output

    refused_mode, sealed = documents[23], documents[24]
    assert refused_mode["code"] == "INVALID_TRANSITION"
    assert sealed["id"] == "se-rw"
    assert (sealed["previous_mode"], sealed["mode"]) == ("rw", "ro")
    assert sealed["discovery_version"] > 0
    assert len(documents) == 25

    # What the README says about Redis: the heartbeat key holds the element's /info document.
    heartbeat = asyncio.run(_heartbeat(cluster))
    assert heartbeat["id"] == "se-rw"
    assert heartbeat["mode"] == "ro"


async def _heartbeat(cluster: DevUp) -> dict:
    redis_url = cluster.env.get("ARTSTORE_REDIS_URL") or cluster.ready["redis"]["url"]
    namespace = cluster.ready["redis"]["namespace"]
    client = Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        stored = await client.get(f"{namespace}:storage-element:se-rw")
    finally:
        await client.aclose()
    assert stored is not None
    return json.loads(stored)
