"""Every cell of the DESIGN mode table, checked over HTTP, and the transitions between modes."""

import hashlib
import json

import pytest

from tests.support.files import put

TABLE = {
    #        create read_content read_metadata update_metadata delete
    "edit": (True, True, True, True, True),
    "rw": (True, True, True, True, False),
    "ro": (False, True, True, False, False),
    "ar": (False, True, True, False, False),
}
MODES = ["edit", "rw", "ro", "ar"]


def _check_table_row(client, mode):
    create, read_content, read_metadata, update_metadata, delete = TABLE[mode]
    existing = client.get("/files", params={"limit": 1}).json()["items"][0]["file_id"]
    outcomes = {
        "create": put(client, b"new file"),
        "read_content": client.get(f"/files/{existing}"),
        "read_metadata": client.get(f"/files/{existing}/attributes"),
        "update_metadata": client.patch(f"/files/{existing}/attributes", json={"description": "changed"}),
        "delete": client.delete(f"/files/{existing}"),
    }
    expected = dict(
        zip(outcomes, (create, read_content, read_metadata, update_metadata, delete), strict=True)
    )
    for operation, response in outcomes.items():
        if expected[operation]:
            assert response.status_code in {200, 201}, f"{mode}/{operation}: {response.text}"
        else:
            assert response.status_code == 409, f"{mode}/{operation} should be refused: {response.text}"
            assert response.json()["code"] == "MODE_NOT_ALLOWED"
    assert client.get("/info").json()["mode"] == mode


def _transition(client, target):
    return client.post("/mode", json={"target_mode": target})


def test_every_cell_of_the_mode_table_and_the_lifecycle_rw_ro_ar(make_se, client_for):
    editable = make_se("edit")
    edit_client = client_for(editable)
    for _ in range(2):
        assert put(edit_client, b"seed").status_code == 201
    _check_table_row(edit_client, "edit")

    se = make_se("rw")
    client = client_for(se)
    contents = [f"document {i}".encode() for i in range(3)]
    for content in contents:
        assert put(client, content).status_code == 201
    _check_table_row(client, "rw")
    contents.append(b"new file")  # the row check's create succeeded in rw

    assert _transition(client, "ro").status_code == 200
    _check_table_row(client, "ro")
    sealed = _transition(client, "ar")
    assert sealed.status_code == 200, sealed.text
    _check_table_row(client, "ar")

    manifest = json.loads((se.data_dir / "seal-manifest.json").read_text())
    listed = {entry["sha256"] for entry in manifest["files"]}
    assert listed == {hashlib.sha256(c).hexdigest() for c in contents}
    assert manifest["file_count"] == len(contents) == sealed.json()["manifest"]["file_count"]
    canonical = json.dumps(manifest["files"], separators=(",", ":"), sort_keys=True).encode()
    assert manifest["digest"]["value"] == hashlib.sha256(canonical).hexdigest()

    se.restart()
    assert client.get("/info").json()["mode"] == "ar"
    assert json.loads((se.data_dir / "mode.json").read_text())["mode"] == "ar"


@pytest.mark.parametrize("start", MODES)
def test_transitions_the_api_does_not_allow_are_409_and_change_nothing(make_se, client_for, start):
    se = make_se("edit" if start == "edit" else "rw")
    client = client_for(se)
    path = {"edit": [], "rw": [], "ro": ["ro"], "ar": ["ro", "ar"]}[start]
    for step in path:
        assert _transition(client, step).status_code == 200
    allowed = {"rw": {"ro"}, "ro": {"ar"}}.get(start, set())
    for target in [*MODES, "bogus"]:
        if target in allowed:
            continue
        response = _transition(client, target)
        assert response.status_code == 409, f"{start} -> {target}: {response.text}"
        assert response.json()["code"] == "INVALID_TRANSITION"
        assert client.get("/info").json()["mode"] == start


def test_persisted_mode_stands_over_configuration_that_lags_behind(make_se, client_for, tmp_path):
    se = make_se("rw", data_dir=tmp_path / "lagging")
    client = client_for(se)
    assert _transition(client, "ro").status_code == 200
    se.restart()  # still configured as rw
    assert client.get("/info").json()["mode"] == "ro"
    assert put(client, b"x").json()["code"] == "MODE_NOT_ALLOWED"


def test_configuration_may_move_edit_to_rw_but_never_back(make_se, client_for, tmp_path):
    data_dir = tmp_path / "edit-then-rw"
    se = make_se("edit", data_dir=data_dir)
    se.stop()
    promoted = make_se("rw", data_dir=data_dir, element_id=se.element_id)
    assert client_for(promoted).get("/info").json()["mode"] == "rw"
    promoted.stop()
    refused = make_se("edit", data_dir=data_dir, element_id=se.element_id, start=False)
    with pytest.raises(RuntimeError, match="cannot return"):
        refused.start()


def test_leaving_ar_needs_the_explicit_override(make_se, client_for, tmp_path):
    data_dir = tmp_path / "archived"
    se = make_se("rw", data_dir=data_dir)
    client = client_for(se)
    assert _transition(client, "ro").status_code == 200
    assert _transition(client, "ar").status_code == 200
    se.stop()
    still_archived = make_se("rw", data_dir=data_dir, element_id=se.element_id)
    assert client_for(still_archived).get("/info").json()["mode"] == "ar"
    still_archived.stop()
    released = make_se("rw", data_dir=data_dir, element_id=se.element_id, allow_leave_archive="true")
    assert client_for(released).get("/info").json()["mode"] == "rw"


def test_info_lists_the_operations_the_mode_allows(make_se, client_for):
    info = client_for(make_se("rw")).get("/info").json()
    assert info["allowed_operations"] == sorted(
        ["create", "read_content", "read_metadata", "update_metadata"]
    )
