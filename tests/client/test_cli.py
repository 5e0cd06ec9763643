"""The `artstore` client commands against a real cluster, run as a user runs them: a process with pipes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.cli import API_ERROR, Run, artstore
from tests.support.cluster import Cluster, ClusterFactory, wait_for

# `<file_id>  <name>  <size>  sha256 <hex>  on <element>`: what an upload prints.
UPLOADED = re.compile(
    r"(?P<file_id>[0-9a-f-]{36})  (?P<name>.+)  (?P<size>\d+(\.\d)? (B|KiB|MiB))"
    r"  sha256 (?P<sha256>[0-9a-f]{64})  on (?P<element>\S+)"
)


def _uploaded(run: Run) -> re.Match[str]:
    assert run.status == 0, run.err
    lines = run.out.splitlines()
    assert len(lines) == 1, run.out
    match = UPLOADED.fullmatch(lines[0])
    assert match, lines[0]
    return match


def _upload(path: Path, env: dict[str, str], *options: str) -> re.Match[str]:
    return _uploaded(artstore("upload", path, *options, env=env))


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def test_an_uploaded_file_downloads_with_the_same_bytes(
    client_env: dict[str, str], cluster: Cluster, tmp_path: Path
) -> None:
    content = os.urandom(300_000)
    source = _write(tmp_path / "report.bin", content)
    run = artstore("upload", source, env=client_env)
    uploaded = _uploaded(run)
    assert run.stderr == b""  # piped: no progress bar, no noise
    assert uploaded["name"] == "report.bin"
    assert uploaded["size"] == "293.0 KiB"
    assert uploaded["sha256"] == hashlib.sha256(content).hexdigest()
    assert uploaded["element"] == cluster.elements["rw"].element_id  # permanent files go to the rw element

    target = tmp_path / "back.bin"
    downloaded = artstore("download", uploaded["file_id"], "-o", target, env=client_env)
    assert downloaded.status == 0, downloaded.err
    assert downloaded.stderr == b""
    assert target.read_bytes() == content
    assert downloaded.out.strip().endswith(f"sha256 {hashlib.sha256(content).hexdigest()} (verified)")
    # Nothing else beside it: the temporary file it was written to became it.
    assert {p.name for p in tmp_path.iterdir()} == {"report.bin", "back.bin", "artstore-data"}


def test_download_names_the_file_after_the_original_and_refuses_to_overwrite(
    client_env: dict[str, str], tmp_path: Path
) -> None:
    content = os.urandom(5000)
    name = f"kept-{uuid.uuid4().hex[:8]}.txt"
    uploaded = _upload(_write(tmp_path / name, content), client_env)
    folder = tmp_path / "downloads"
    folder.mkdir()

    first = artstore("download", uploaded["file_id"], env=client_env, cwd=folder)
    assert first.status == 0, first.err
    assert (folder / name).read_bytes() == content

    (folder / name).write_bytes(b"my own edits")
    refused = artstore("download", uploaded["file_id"], env=client_env, cwd=folder)
    line = refused.error_line()
    assert line.startswith("artstore: ")
    assert name in line
    assert "--force" in line
    assert (folder / name).read_bytes() == b"my own edits"

    forced = artstore("download", uploaded["file_id"], "--force", env=client_env, cwd=folder)
    assert forced.status == 0, forced.err
    assert (folder / name).read_bytes() == content

    into_folder = artstore("download", uploaded["file_id"], "-o", folder, "--force", env=client_env)
    assert into_folder.status == 0, into_folder.err
    assert (folder / name).read_bytes() == content


def test_upload_of_stdin_streams_it(client_env: dict[str, str]) -> None:
    content = os.urandom(1_500_000)
    run = artstore(
        "upload", "-", "--name", "from-a-pipe.bin", "--content-type", "application/x-test",
        env=client_env, input=content,
    )  # fmt: skip
    uploaded = _uploaded(run)
    assert run.stderr == b""
    assert uploaded["name"] == "from-a-pipe.bin"
    assert uploaded["sha256"] == hashlib.sha256(content).hexdigest()

    to_stdout = artstore("download", uploaded["file_id"], "-o", "-", env=client_env)
    assert to_stdout.status == 0, to_stdout.err
    assert to_stdout.stdout == content  # the bytes and nothing else
    assert to_stdout.stderr == b""

    info = json.loads(artstore("info", uploaded["file_id"], "--json", env=client_env).out)
    assert info["content_type"] == "application/x-test"
    assert info["size_bytes"] == len(content)


def test_json_outputs_are_one_document_each(client_env: dict[str, str], tmp_path: Path) -> None:
    name = f"json-{uuid.uuid4().hex[:8]}.txt"
    source = _write(tmp_path / name, b"described in JSON\n")
    upload = artstore(
        "upload", source, "--json", "--tag", "json", "--metadata", "year:=2024", "--metadata", "team=blue",
        "--description", "a JSON test", env=client_env,
    )  # fmt: skip
    assert upload.status == 0, upload.err
    assert upload.stderr == b""
    stored = json.loads(upload.out)
    assert stored["original_filename"] == name
    assert stored["tags"] == ["json"]
    assert stored["metadata"] == {"year": 2024, "team": "blue"}
    file_id = stored["file_id"]

    info = json.loads(artstore("info", file_id, "--json", env=client_env).out)
    assert (info["file_id"], info["sha256"], info["description"]) == (
        file_id,
        stored["sha256"],
        "a JSON test",
    )

    found = wait_for(
        lambda: json.loads(artstore("search", "--filename", name, "--json", env=client_env).out),
        within=30,
        what="the upload shows in search",
    )
    assert [item["file_id"] for item in found] == [file_id]
    by_metadata = json.loads(
        artstore("search", "--metadata", "year:=2024", "--tag", "json", "--json", env=client_env).out
    )
    assert file_id in [item["file_id"] for item in by_metadata]

    target = tmp_path / "copy.txt"
    downloaded = json.loads(artstore("download", file_id, "-o", target, "--json", env=client_env).out)
    assert downloaded["path"] == str(target)
    assert downloaded["sha256"] == stored["sha256"]

    elements = json.loads(artstore("se", "list", "--json", env=client_env).out)
    assert {element["mode"] for element in elements} == {"edit", "rw"}
    accounts = json.loads(artstore("accounts", "list", "--json", env=client_env).out)
    assert all("client_secret" not in account for account in accounts)
    assert json.loads(artstore("audit", "verify", "--json", env=client_env).out)["valid"] is True


def test_search_finds_an_uploaded_file_by_a_word_of_its_name(
    client_env: dict[str, str], tmp_path: Path
) -> None:
    word = f"zebra{uuid.uuid4().hex[:8]}"
    uploaded = _upload(
        _write(tmp_path / f"{word}-notes.txt", b"notes"),
        client_env,
        "--tag",
        "animals",
        "--description",
        "striped",
    )

    def table() -> str | None:
        run = artstore("search", word, env=client_env)
        assert run.status == 0, run.err
        return run.out if uploaded["file_id"] in run.out else None

    shown = wait_for(table, within=30, what="the upload shows in search")
    [row] = [line for line in shown.splitlines() if uploaded["file_id"] in line]
    assert f"{word}-notes.txt" in row
    assert "animals" in row
    assert shown.splitlines()[-1] == "1 file shown"

    nothing = artstore("search", f"{word} -striped", env=client_env)
    assert nothing.status == 0, nothing.err
    assert nothing.out.splitlines()[-1] == "0 files shown"


def test_search_says_when_the_limit_cut_the_list(client_env: dict[str, str], tmp_path: Path) -> None:
    tag = f"many-{uuid.uuid4().hex[:8]}"
    for number in range(3):
        _upload(_write(tmp_path / f"part{number}.txt", b"part %d" % number), client_env, "--tag", tag)
    wait_for(
        lambda: len(json.loads(artstore("search", "--tag", tag, "--json", env=client_env).out)) == 3,
        within=30,
        what="three uploads in search",
    )
    cut = artstore(
        "search",
        "--tag",
        tag,
        "--limit",
        "2",
        "--sort",
        "original_filename",
        "--order",
        "asc",
        env=client_env,
    )
    assert cut.status == 0, cut.err
    assert cut.out.splitlines()[-1] == "2 files shown; more match (raise --limit to see them)"
    assert "part0.txt" in cut.out
    assert "part1.txt" in cut.out
    assert "part2.txt" not in cut.out


def test_info_shows_the_attributes(client_env: dict[str, str], tmp_path: Path) -> None:
    content = b"attributes, please\n"
    uploaded = _upload(
        _write(tmp_path / "attrs.txt", content),
        client_env,
        "--tag", "one", "--tag", "two", "--metadata", "owner=ops", "--description", "for the info test",
    )  # fmt: skip
    run = artstore("info", uploaded["file_id"], env=client_env)
    assert run.status == 0, run.err
    fields = dict(re.split(r":\s+", line, maxsplit=1) for line in run.out.splitlines())
    assert fields["file_id"] == uploaded["file_id"]
    assert fields["name"] == "attrs.txt"
    assert fields["size"] == f"{len(content)} bytes ({len(content)} B)"
    assert fields["sha256"] == hashlib.sha256(content).hexdigest()
    assert fields["tags"] == "one, two"
    assert json.loads(fields["metadata"]) == {"owner": "ops"}
    assert fields["description"] == "for the info test"
    assert fields["retention"] == "permanent"

    missing = artstore("info", str(uuid.uuid4()), env=client_env).error_line()
    assert API_ERROR.fullmatch(missing), missing
    assert API_ERROR.fullmatch(missing)["status"] == "404"  # type: ignore[index]


def test_update_changes_attributes_and_delete_removes_a_temporary_file(
    client_env: dict[str, str], cluster: Cluster, tmp_path: Path
) -> None:
    source = _write(tmp_path / "draft.txt", b"a draft")
    draft = _upload(source, client_env, "--ttl-days", "1", "--tag", "draft")
    assert draft["element"] == cluster.elements["edit"].element_id  # temporary files go to the edit element

    updated = artstore(
        "update", draft["file_id"], "--description", "reviewed", "--tag", "final", "--metadata", "pages:=3",
        env=client_env,
    )  # fmt: skip
    assert updated.status == 0, updated.err
    assert updated.out == f"updated {draft['file_id']}  draft.txt\n"
    info = json.loads(artstore("info", draft["file_id"], "--json", env=client_env).out)
    assert (info["description"], info["tags"], info["metadata"]) == ("reviewed", ["final"], {"pages": 3})
    assert artstore("update", draft["file_id"], env=client_env).status == 2  # nothing to change

    deleted = artstore("delete", draft["file_id"], env=client_env)
    assert deleted.status == 0, deleted.err
    assert deleted.out == f"deleted {draft['file_id']}\n"
    gone = API_ERROR.fullmatch(artstore("info", draft["file_id"], env=client_env).error_line())
    assert gone, "info of a deleted file"
    assert (gone["code"], gone["status"]) == ("NOT_FOUND", "404")

    kept = _upload(source, client_env)  # permanent, on the rw element: never deleted
    refused = API_ERROR.fullmatch(artstore("delete", kept["file_id"], env=client_env).error_line())
    assert refused, "delete of a permanent file"
    assert refused["code"] == "MODE_NOT_ALLOWED"


def test_se_list_shows_both_elements(client_env: dict[str, str], cluster: Cluster) -> None:
    run = artstore("se", "list", env=client_env)
    assert run.status == 0, run.err
    rows = {line.split()[0]: line.split() for line in run.out.splitlines()[1:] if line.strip()}
    edit, rw = cluster.elements["edit"], cluster.elements["rw"]
    assert rows.keys() == {edit.element_id, rw.element_id}
    assert rows[edit.element_id][1:4] == ["edit", "online", edit.url]
    assert rows[rw.element_id][1:4] == ["rw", "online", rw.url]


def test_sealing_the_rw_element_refuses_permanent_uploads_in_one_line(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    own = make_cluster()  # its own cluster: a sealed rw element would break the other tests
    env = {**cluster_env_without_query(own), "ARTSTORE_DATA_DIR": str(tmp_path / "none")}
    rw = own.elements["rw"].element_id
    source = _write(tmp_path / "late.txt", b"too late for rw")
    _upload(source, env)  # accepted while the element is rw

    changed = artstore("se", "mode", rw, "ro", env=env)
    assert changed.status == 0, changed.err
    assert changed.out == f"{rw}: rw -> ro\n"
    listed = {
        element["id"]: element["mode"]
        for element in json.loads(artstore("se", "list", "--json", env=env).out)
    }
    assert listed[rw] == "ro"

    def refusal() -> re.Match[str] | None:
        line = artstore("upload", source, env=env).error_line()  # refused, in one line, every time
        match = API_ERROR.fullmatch(line)
        assert match, line
        return match if match["code"] == "NO_STORAGE_ELEMENT" else None

    # The ingester hears of the new mode through discovery a moment after the admin answered.
    match = wait_for(refusal, within=10, what="the ingester refuses for want of an rw element")
    assert match["status"] == "503"
    assert "rw" in match["detail"]

    temporary = artstore("upload", source, "--ttl-days", "1", env=env)  # the edit element still takes these
    assert _uploaded(temporary)["element"] == own.elements["edit"].element_id

    backwards = artstore("se", "mode", rw, "edit", env=env).error_line()
    assert API_ERROR.fullmatch(backwards), backwards
    wrong_mode = artstore("se", "mode", rw, "sideways", env=env)
    assert wrong_mode.status == 2  # a usage error, before anything is sent
    assert "sideways" in wrong_mode.err


def cluster_env_without_query(cluster: Cluster) -> dict[str, str]:
    account = cluster.account("ADMIN")
    return {
        "ARTSTORE_ADMIN_URL": cluster.admin.url,
        "ARTSTORE_INGESTER_URL": cluster.ingester.url,
        "ARTSTORE_CLIENT_ID": account["client_id"],
        "ARTSTORE_CLIENT_SECRET": account["client_secret"],
    }


def test_a_readonly_account_cannot_upload(client_env: dict[str, str], tmp_path: Path) -> None:
    name = f"reader-{uuid.uuid4().hex[:8]}"
    created = artstore("accounts", "create", name, "--role", "READONLY", "--json", env=client_env)
    assert created.status == 0, created.err
    account = json.loads(created.out)
    assert (account["name"], account["role"]) == (name, "READONLY")
    reader = {
        **client_env,
        "ARTSTORE_CLIENT_ID": account["client_id"],
        "ARTSTORE_CLIENT_SECRET": account["client_secret"],
    }

    refused = artstore("upload", _write(tmp_path / "nope.txt", b"not allowed"), env=reader)
    match = API_ERROR.fullmatch(refused.error_line())
    assert match, refused.err
    assert match["status"] == "403"
    assert match["code"] == "INSUFFICIENT_SCOPE"

    reads = artstore("se", "list", env=reader)  # what READONLY may do still works
    assert reads.status == 0, reads.err


def test_accounts_are_created_listed_rotated_and_deleted(client_env: dict[str, str]) -> None:
    name = f"robot-{uuid.uuid4().hex[:8]}"
    created = artstore(
        "accounts", "create", name, "--role", "user", "--description", "a test robot", env=client_env
    )
    assert created.status == 0, created.err
    fields = _fields(created.out)
    assert created.out.startswith(f"created account {name} (")
    assert fields["role"] == "USER"
    first_secret = fields["client_secret"]
    as_robot = {
        **client_env,
        "ARTSTORE_CLIENT_ID": fields["client_id"],
        "ARTSTORE_CLIENT_SECRET": first_secret,
    }
    assert artstore("token", env=as_robot).status == 0

    listed = artstore("accounts", "list", env=client_env)
    assert listed.status == 0, listed.err
    [row] = [line.split() for line in listed.out.splitlines() if f" {name} " in f" {line} "]
    account_id = row[0]
    assert row[1:5] == [name, fields["client_id"], "USER", "active"]

    rotated = artstore("accounts", "rotate-secret", name, env=client_env)  # by name: people remember names
    assert rotated.status == 0, rotated.err
    new_secret = _fields(rotated.out)["client_secret"]
    assert new_secret != first_secret
    assert "previous one works for a short overlap" in rotated.out
    token = artstore("token", env={**as_robot, "ARTSTORE_CLIENT_SECRET": new_secret})
    assert token.status == 0, token.err
    assert token.out.count(".") == 2  # a JWT

    deleted = artstore("accounts", "delete", account_id, env=client_env)
    assert deleted.status == 0, deleted.err
    assert name not in artstore("accounts", "list", env=client_env).out
    refused = artstore("token", env={**as_robot, "ARTSTORE_CLIENT_SECRET": new_secret}).error_line()
    assert refused.startswith("artstore: invalid_client: "), refused

    unknown = artstore("accounts", "delete", f"nobody-{uuid.uuid4().hex[:6]}", env=client_env).error_line()
    assert "nobody-" in unknown


def _fields(output: str) -> dict[str, str]:
    return {
        name: value.strip()
        for name, value in (line.split(": ", 1) for line in output.splitlines() if ": " in line)
    }


def test_audit_verify_reports_an_intact_log(client_env: dict[str, str]) -> None:
    run = artstore("audit", "verify", env=client_env)
    assert run.status == 0, run.err
    match = re.fullmatch(r"audit log intact: (\d+) records checked\n", run.out)
    assert match, run.out
    assert int(match[1]) > 0


def test_an_unreachable_service_is_one_line(client_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nobody listens once the socket is closed
    url = f"http://127.0.0.1:{closed_port}"
    source = _write(tmp_path / "unsent.txt", b"never sent")
    attempts = [
        ("ARTSTORE_ADMIN_URL", ("se", "list")),
        ("ARTSTORE_ADMIN_URL", ("token",)),
        ("ARTSTORE_ADMIN_URL", ("accounts", "list", "--json")),
        ("ARTSTORE_INGESTER_URL", ("upload", str(source))),
        ("ARTSTORE_QUERY_URL", ("download", str(uuid.uuid4()), "-o", str(tmp_path / "out"))),
    ]
    for variable, command in attempts:
        line = artstore(*command, env={**client_env, variable: url}).error_line()
        assert line.startswith("artstore: "), line
        assert url in line
        assert "artstore dev up" in line
    assert not (tmp_path / "out").exists()


def test_missing_credentials_say_how_to_get_them(tmp_path: Path) -> None:
    source = _write(tmp_path / "file.txt", b"going nowhere")
    nowhere = tmp_path / "no-cluster-here"
    for command in (("upload", source), ("token",), ("se", "list")):
        line = artstore(*command, "--data-dir", nowhere, env={}).error_line()
        assert "artstore dev up" in line
        assert str(nowhere) in line
    from_environment = artstore("search", env={"ARTSTORE_DATA_DIR": str(nowhere)}).error_line()
    assert str(nowhere) in from_environment


def test_local_mistakes_are_one_line(client_env: dict[str, str], tmp_path: Path) -> None:
    missing = artstore("upload", tmp_path / "not-there.txt", env=client_env).error_line()
    assert missing == f"artstore: {tmp_path / 'not-there.txt'}: no such file"
    folder = artstore("upload", tmp_path, env=client_env).error_line()
    assert "is a directory" in folder
    bad_metadata = artstore("upload", tmp_path, "--metadata", "novalue", env=client_env)
    assert bad_metadata.status == 2
    assert "KEY=VALUE" in bad_metadata.err
    both_on_stdout = artstore("download", str(uuid.uuid4()), "-o", "-", "--json", env=client_env)
    assert both_on_stdout.status == 2
    assert both_on_stdout.stdout == b""


def test_dev_up_reads_its_base_port_from_the_environment(tmp_path: Path) -> None:
    run = artstore("dev", "up", "--data-dir", tmp_path, env={"ARTSTORE_BASE_PORT": "70000"})
    assert run.status == 2  # refused before anything starts
    assert "ARTSTORE_BASE_PORT" in run.err
    assert "65505" in run.err  # the highest base port that leaves room for the query module at N+30
    assert not list(tmp_path.iterdir())


def test_the_client_commands_do_not_load_the_servers() -> None:
    probe = (
        "import sys, artstore_client.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'artstore_admin', 'artstore_storage', 'artstore_ingester', 'artstore_query', 'fastapi', 'uvicorn', "
        "'sqlalchemy', 'asyncpg', 'artstore_common'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=True, timeout=60)
    assert loaded.stdout.decode().strip() == "[]"
