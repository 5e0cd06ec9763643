from __future__ import annotations

import functools
import hashlib
import json
import os
import signal
import stat
import subprocess
import uuid
from collections.abc import Callable

import httpx
import jwt
import psutil
import pytest

from artstore_common.embedded import EmbeddedPostgres
from tests.e2e._devup import (
    ARTSTORE,
    INGESTER_ACCOUNT_PREFIX,
    QUERY_ACCOUNT_PREFIX,
    DevUp,
    port_is_open,
    wait_until,
)

pytestmark = pytest.mark.e2e


def test_ready_line_describes_the_cluster(cluster: DevUp) -> None:
    ready = cluster.ready
    assert ready["admin_url"] == f"http://127.0.0.1:{cluster.base_port}"
    assert ready["ingester_url"] == f"http://127.0.0.1:{cluster.base_port + 20}"
    assert ready["query_url"] == f"http://127.0.0.1:{cluster.base_port + 30}"
    assert ready["storage_elements"] == [
        {"id": "se-edit", "url": f"http://127.0.0.1:{cluster.base_port + 10}", "mode": "edit"},
        {"id": "se-rw", "url": f"http://127.0.0.1:{cluster.base_port + 11}", "mode": "rw"},
    ]
    assert ready["client_id"]
    assert ready["client_secret"]
    assert ready["data_dir"] == str(cluster.data_dir.resolve())


def test_elements_answer_info_in_their_modes(cluster: DevUp) -> None:
    token = cluster.token()
    for element in cluster.ready["storage_elements"]:
        with cluster.client(element["url"], token) as client:
            info = client.get("/info")
        assert info.status_code == 200, info.text
        assert info.json()["id"] == element["id"]
        assert info.json()["mode"] == element["mode"]
    with cluster.client(cluster.element_url("se-rw"), token) as client:
        assert "delete" not in client.get("/info").json()["allowed_operations"]


def test_elements_are_registered_with_the_admin(cluster: DevUp) -> None:
    with cluster.client(cluster.ready["admin_url"]) as client:
        listed = client.get("/storage-elements")
    assert listed.status_code == 200, listed.text
    registered = {(item["id"], item["url"], item["mode"]) for item in listed.json()["items"]}
    assert registered == {(se["id"], se["url"], se["mode"]) for se in cluster.ready["storage_elements"]}


def test_secrets_are_private_files(cluster: DevUp) -> None:
    credentials = cluster.data_dir / "credentials.json"
    written = json.loads(credentials.read_text())
    assert written["client_secret"] == cluster.ready["client_secret"]
    assert written["ingester_url"] == cluster.ready["ingester_url"]
    assert written["query_url"] == cluster.ready["query_url"]
    for account_file, prefix in (
        (cluster.ingester_account_file, INGESTER_ACCOUNT_PREFIX),
        (cluster.query_account_file, QUERY_ACCOUNT_PREFIX),
    ):
        account = json.loads(account_file.read_text())
        assert account["name"].startswith(prefix)
        assert account["client_secret"]
    secrets = (credentials, cluster.ingester_account_file, cluster.query_account_file)
    for secret in (*secrets, *(cluster.data_dir / "admin").iterdir()):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret


def test_upload_through_the_ingester_lands_on_the_element_it_names(cluster: DevUp) -> None:
    token = cluster.token()  # the bootstrap ADMIN account: files:write and files:read
    content = b"uploaded through the dev cluster's ingester\n"
    uploaded = cluster.upload(content, "through-ingester.txt", token)
    assert uploaded.status_code == 201, uploaded.text
    stored = uploaded.json()
    assert stored["original_filename"] == "through-ingester.txt"
    assert stored["size_bytes"] == len(content)
    assert stored["sha256"] == hashlib.sha256(content).hexdigest()
    with cluster.client(cluster.element_url(stored["storage_element_id"]), token) as client:
        download = client.get(f"/files/{stored['file_id']}")
    assert download.status_code == 200, download.text
    assert download.content == content


def test_the_ingester_runs_as_its_own_system_account(cluster: DevUp) -> None:
    account = json.loads(cluster.ingester_account_file.read_text())
    assert account["client_id"] != cluster.ready["client_id"]
    assert cluster.ingester_accounts() == [account["name"]]
    with cluster.client(cluster.ready["admin_url"]) as client:
        listed = client.get("/service-accounts").json()["items"]
    [made] = [item for item in listed if item["name"] == account["name"]]
    assert (made["role"], made["is_system"], made["status"]) == ("USER", True, "active")


def test_a_file_uploaded_through_the_ingester_is_found_through_the_query_module(cluster: DevUp) -> None:
    token = cluster.token()  # the bootstrap ADMIN account
    uploaded = cluster.upload(b"found through the query module\n", "through-query.txt", token)
    assert uploaded.status_code == 201, uploaded.text
    stored = uploaded.json()

    def found() -> dict[str, object] | None:
        answer = cluster.search({}, token)
        assert answer.status_code == 200, answer.text
        return next((item for item in answer.json()["items"] if item["file_id"] == stored["file_id"]), None)

    item = wait_until(found, within=30, what="the upload shows in the query module's search")
    assert item["original_filename"] == "through-query.txt"
    with cluster.client(cluster.ready["query_url"], token) as client:
        attributes = client.get(f"/files/{stored['file_id']}")
    assert attributes.status_code == 200, attributes.text
    read = attributes.json()
    for name in ("original_filename", "size_bytes", "sha256", "storage_element_id", "content_type"):
        assert read[name] == stored[name], name


def test_the_query_module_runs_as_its_own_system_account(cluster: DevUp) -> None:
    ready = httpx.get(cluster.ready["query_url"] + "/health/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    account = json.loads(cluster.query_account_file.read_text())
    ingester = json.loads(cluster.ingester_account_file.read_text())
    assert account["client_id"] not in (cluster.ready["client_id"], ingester["client_id"])
    [made] = cluster.system_accounts(QUERY_ACCOUNT_PREFIX)
    assert made["name"] == account["name"]
    assert (made["role"], made["is_system"], made["status"]) == ("READONLY", True, "active")


def test_token_endpoint_speaks_oauth_client_credentials(cluster: DevUp) -> None:
    url = cluster.ready["admin_url"] + "/api/v1/auth/token"
    client_id, secret = cluster.ready["client_id"], cluster.ready["client_secret"]
    basic = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    fields = httpx.post(
        url, data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    )
    as_json = httpx.post(url, json={"client_id": client_id, "client_secret": secret})
    for response in (basic, fields, as_json):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.json()["token_type"] == "Bearer"
        assert response.json()["expires_in"] == 1800

    token = basic.json()["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    assert header["typ"] == "at+jwt"
    jwks = httpx.get(cluster.ready["admin_url"] + "/.well-known/jwks.json").json()
    [jwk] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert "d" not in jwk  # only public members are published
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="storage", issuer="artstore-admin"
    )
    assert claims["client_id"] == client_id
    assert claims["role"] == "ADMIN"
    assert claims["aud"] == ["admin", "ingester", "query", "storage"]
    assert set(claims["permissions"]) == {
        "files:read", "files:write", "files:delete", "storage:read", "storage:write",
        "accounts:read", "accounts:write", "audit:read", "internal",
    }  # fmt: skip
    assert claims["scope"].split() == claims["permissions"]
    assert claims["exp"] - claims["iat"] == 1800
    assert {"sub", "nbf", "jti"} <= claims.keys()


def test_token_endpoint_refuses_bad_requests_the_oauth_way(cluster: DevUp) -> None:
    url = cluster.ready["admin_url"] + "/api/v1/auth/token"
    client_id = cluster.ready["client_id"]
    wrong = httpx.post(url, data={"grant_type": "client_credentials"}, auth=(client_id, "not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"].startswith("Basic")
    grant = httpx.post(url, data={"grant_type": "password"}, auth=(client_id, cluster.ready["client_secret"]))
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    scope = httpx.post(
        url,
        data={"grant_type": "client_credentials", "scope": "files:read root"},
        auth=(client_id, cluster.ready["client_secret"]),
    )
    assert scope.status_code == 400
    assert scope.json()["error"] == "invalid_scope"
    narrowed = httpx.post(
        url,
        data={"grant_type": "client_credentials", "scope": "files:read"},
        auth=(client_id, cluster.ready["client_secret"]),
    )
    assert narrowed.json()["scope"] == "files:read"
    with cluster.client(cluster.element_url("se-rw"), narrowed.json()["access_token"]) as client:
        assert client.get("/info").status_code == 403


def test_token_command_explains_missing_credentials(tmp_path) -> None:
    result = subprocess.run(
        [ARTSTORE, "token", "--data-dir", str(tmp_path / "nothing-here")],
        capture_output=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 1
    assert b"artstore dev up" in result.stderr
    assert result.stdout == b""


def test_second_dev_up_on_the_same_data_dir_is_refused(cluster: DevUp) -> None:
    second = DevUp(cluster.data_dir, cluster.base_port + 1000, cluster.env, name="second")
    try:
        with pytest.raises(RuntimeError, match="another `artstore dev up`"):
            second.start(timeout=60)
    finally:
        second.cleanup()
    with cluster.client(cluster.element_url("se-edit")) as client:
        assert client.get("/info").status_code == 200


def test_crashed_services_are_reported_and_restarted(cluster: DevUp) -> None:
    services: dict[str, tuple[Callable[[], psutil.Process], str]] = {
        "se-edit": (lambda: cluster.element_process("se-edit"), cluster.element_url("se-edit")),
        "query": (cluster.query_process, cluster.ready["query_url"]),
    }
    killed = {}
    for name, (find, _) in services.items():
        victim = find()
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed[name] = victim.pid

    for name, (find, url) in services.items():
        restarted = functools.partial(_restarted, find, killed[name], url)
        wait_until(restarted, within=60, what=f"{name} restarted and ready")
        assert f"{name} exited with status -9" in cluster.stderr_tail()
    with cluster.client(cluster.element_url("se-edit")) as client:
        assert client.get("/info").json()["mode"] == "edit"
    assert cluster.search({}).status_code == 200


def _restarted(find: Callable[[], psutil.Process], killed_pid: int, url: str) -> bool:
    return find().pid != killed_pid and httpx.get(url + "/health/ready", timeout=2).status_code == 200


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# The configured-servers case exists only where servers are offered (CI sets ARTSTORE_TEST_DATABASE_URL).
_SERVER_KINDS = [True] + ([False] if os.environ.get("ARTSTORE_TEST_DATABASE_URL") else [])


@pytest.mark.parametrize(
    "embedded", _SERVER_KINDS, ids=lambda e: "embedded-servers" if e else "configured-servers"
)
def test_sigterm_stops_everything_and_the_data_survives_a_restart(dev_up, embedded: bool) -> None:
    first = dev_up(embedded=embedded)
    ready = first.start()
    assert ready["database"]["embedded"] is embedded
    token = first.token()
    file_id = str(uuid.uuid4())
    with first.client(first.element_url("se-rw"), token) as client:
        stored = client.put(
            f"/files/{file_id}", content=b"kept across restarts", headers={"X-Artstore-Filename": "kept.txt"}
        )
    assert stored.status_code == 201, stored.text

    account = json.loads(first.ingester_account_file.read_text())
    query_account = json.loads(first.query_account_file.read_text())

    processes = [psutil.Process(first.pid), *first.children()]
    modules = [p.cmdline()[2] if p.cmdline()[1:2] == ["-m"] else "" for p in processes]
    assert modules.count("artstore_storage") == 2
    assert modules.count("artstore_storage.storage.agent") == 2  # each element's disk agent
    assert modules.count("artstore_ingester") == 1
    assert modules.count("artstore_query") == 1
    postgres = first.postgres_pid()
    assert (postgres is not None) == embedded
    ports = first.ports()

    assert first.terminate() == 0
    assert first.trailing_stdout == b""  # the one ready line was all it printed
    assert not [p for p in processes if _alive(p.pid)]
    if postgres is not None:
        # pg_ctl returns once postmaster.pid is gone, a moment before the postmaster itself exits.
        wait_until(lambda: not _alive(postgres), within=10, what="the embedded PostgreSQL exits")
    assert not [port for port in ports if port_is_open(port)]

    second = DevUp(first.data_dir, first.base_port, first.env, name="restarted")
    try:
        again = second.start()
        assert again["client_id"] == ready["client_id"]
        assert again["client_secret"] == ready["client_secret"]
        # The signing key survived too, so a token from before the restart is still good.
        with second.client(second.element_url("se-rw"), token) as client:
            download = client.get(f"/files/{file_id}")
            listed = client.get("/files").json()["items"]
        assert download.status_code == 200
        assert download.content == b"kept across restarts"
        assert [item["file_id"] for item in listed] == [file_id]

        # The ingester is back, as the account the first start made: no second one was created.
        assert again["ingester_url"] == ready["ingester_url"]
        assert json.loads(second.ingester_account_file.read_text()) == account
        assert second.ingester_accounts() == [account["name"]]
        assert second.upload(b"after the restart", "again.txt", token).status_code == 201

        # So is the query module, as its account from the first start too.
        assert again["query_url"] == ready["query_url"]
        assert httpx.get(again["query_url"] + "/health/ready", timeout=10).status_code == 200
        assert json.loads(second.query_account_file.read_text()) == query_account
        assert second.query_accounts() == [query_account["name"]]
    finally:
        second.cleanup()


def test_system_accounts_that_no_longer_work_are_replaced(dev_up) -> None:
    first = dev_up()
    first.start()
    stale = json.loads(first.ingester_account_file.read_text())
    stale_query = json.loads(first.query_account_file.read_text())
    with first.client(first.ready["admin_url"]) as client:
        listed = client.get("/service-accounts").json()["items"]
        for name in (stale["name"], stale_query["name"]):
            [stale_id] = [account["id"] for account in listed if account["name"] == name]
            assert client.delete(f"/service-accounts/{stale_id}").status_code == 204
    assert first.terminate() == 0

    second = DevUp(first.data_dir, first.base_port, first.env, name="replaced")
    try:
        second.start()
        replacement = json.loads(second.ingester_account_file.read_text())
        assert replacement["client_id"] != stale["client_id"]
        assert second.ingester_accounts() == [replacement["name"]]
        assert f"the ingester's account {stale['name']} no longer works" in second.stderr_tail()
        assert second.upload(b"with the new account", "new.txt").status_code == 201

        query_replacement = json.loads(second.query_account_file.read_text())
        assert query_replacement["client_id"] != stale_query["client_id"]
        assert second.query_accounts() == [query_replacement["name"]]
        assert f"the query module's account {stale_query['name']} no longer works" in second.stderr_tail()
        assert httpx.get(second.ready["query_url"] + "/health/ready", timeout=10).status_code == 200
    finally:
        second.cleanup()


def test_a_killed_dev_up_leaves_nothing_in_the_way_of_the_next_one(dev_up) -> None:
    first = dev_up(embedded=True)
    first.start()
    # The admin, the storage elements and their disk agents, the ingester, the query module, the embedded Redis.
    orphans = first.children()
    assert len(orphans) == 8
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    second = DevUp(first.data_dir, first.base_port, first.env, name="after-kill")
    try:
        assert all(_alive(p.pid) for p in orphans)  # nobody stopped them: that is what a kill -9 leaves
        second.start()
        assert not [p for p in orphans if _alive(p.pid)]
        assert "an earlier dev up left running" in second.stderr_tail()
        with second.client(second.element_url("se-rw")) as client:
            assert client.get("/info").status_code == 200
    finally:
        second.cleanup()
        for orphan in orphans:
            if _alive(orphan.pid):
                orphan.kill()
        if second.postgres_pid() is not None:
            EmbeddedPostgres(first.data_dir / "postgres").stop()


def _usable(cluster: DevUp, content: bytes) -> bool:
    """What a user does: a token, an upload (permanent, so onto se-rw), a search, a download."""
    timeout = httpx.Timeout(3.0)
    issued = httpx.post(
        cluster.ready["admin_url"] + "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        auth=(cluster.ready["client_id"], cluster.ready["client_secret"]),
        timeout=timeout,
    )
    issued.raise_for_status()
    auth = {"Authorization": f"Bearer {issued.json()['access_token']}"}
    name = f"usable-{uuid.uuid4().hex}.txt"
    stored = httpx.post(
        cluster.ready["ingester_url"] + "/api/v1/files",
        content=content,
        headers={**auth, "X-Artstore-Filename": name},
        timeout=timeout,
    )
    stored.raise_for_status()
    query = cluster.ready["query_url"] + "/api/v1"
    found = httpx.post(f"{query}/search", json={"filename": name}, headers=auth, timeout=timeout)
    found.raise_for_status()
    [item] = found.json()["items"]
    downloaded = httpx.get(f"{query}/files/{item['file_id']}/content", headers=auth, timeout=timeout)
    downloaded.raise_for_status()
    return downloaded.content == content


@pytest.mark.parametrize("service", ["admin", "se-rw", "ingester", "query"])
def test_a_killed_service_is_restarted_and_the_cluster_usable_within_10_s(
    cluster: DevUp, service: str
) -> None:
    wait_until(lambda: _usable(cluster, b"before"), within=60, what="the cluster usable before the kill")
    victim = cluster.service_process(service)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    # A user retrying every half second, as a script would: the retries must not keep the cluster down.
    wait_until(
        lambda: _usable(cluster, service.encode()), within=10, what=f"usable after {service} was killed"
    )
    assert cluster.service_process(service).pid != victim.pid
