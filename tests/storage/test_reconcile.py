import uuid

from tests.support.files import attr_json, put, shard
from tests.support.infra import query


def _schema(se):
    return "se_" + se.element_id.replace("-", "_")


def _index(se):
    rows = query(se.database_url, f'SELECT file_id, attributes FROM "{_schema(se)}".file_index')
    import json

    return {str(r["file_id"]): json.loads(r["attributes"]) for r in rows}


def _rescan(se):
    return {
        p.name.split(".")[0]: attr_json(se.data_dir, p.name.split(".")[0])
        for p in (se.data_dir / "files").rglob("*.attr.json")
    }


def _upload(client, n):
    ids = []
    for i in range(n):
        response = put(client, f"file number {i}".encode() * 10, filename=f"f{i}.txt")
        assert response.status_code == 201
        ids.append(response.json()["file_id"])
    return ids


def test_reconcile_reports_each_kind_of_damage_then_repair_makes_index_match(make_se, client_for):
    se = make_se("edit")
    client = client_for(se)
    lost_data, lost_attr, flipped, healthy = _upload(client, 4)
    assert client.post("/maintenance/reconcile", json={}).json()["consistent"] is True

    (shard(se.data_dir, lost_data) / f"{lost_data}.bin").unlink()
    (shard(se.data_dir, lost_attr) / f"{lost_attr}.attr.json").unlink()
    target = shard(se.data_dir, flipped) / f"{flipped}.bin"
    raw = bytearray(target.read_bytes())
    raw[3] ^= 0x01
    target.write_bytes(bytes(raw))
    stray = se.data_dir / "files" / "ab" / "notes.txt"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_text("left here by hand")

    report = client.post("/maintenance/reconcile", json={}).json()
    found = {(i["kind"], i.get("file_id")) for i in report["issues"]}
    assert ("missing_data", lost_data) in found
    assert ("missing_attributes", lost_attr) in found
    assert ("checksum_mismatch", flipped) in found
    assert ("stray_file", None) in found
    assert ("index_orphan", lost_data) in found  # indexed, but no longer servable
    assert ("index_orphan", lost_attr) in found
    assert not any(i.get("file_id") == healthy for i in report["issues"])
    assert report["consistent"] is False

    repaired = client.post("/maintenance/reconcile", json={"repair": True}).json()
    moved = {entry["kind"] for entry in repaired["repaired"]}
    assert moved == {"missing_data", "missing_attributes", "stray_file"}
    assert not stray.exists()
    assert any((se.data_dir / "quarantine").rglob("notes.txt"))
    assert set(_index(se)) == set(_rescan(se)) == {flipped, healthy}
    assert _index(se) == _rescan(se)

    after = client.post("/maintenance/reconcile", json={}).json()
    assert [i["kind"] for i in after["issues"]] == ["checksum_mismatch"]  # bytes cannot be repaired here


def test_dropped_index_table_is_reported_and_rebuilt_from_attr_json(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    ids = _upload(client, 5)
    client.patch(f"/files/{ids[0]}/attributes", json={"tags": ["kept"]})
    query(se.database_url, f'DROP TABLE "{_schema(se)}".file_index')

    report = client.post("/maintenance/reconcile", json={}).json()
    assert "index_table_missing" in report["summary"]
    assert client.get(f"/files/{ids[1]}").status_code == 200  # reads never needed the index

    rebuilt = client.post("/maintenance/reconcile", json={"rebuild_index": True}).json()
    assert rebuilt["index"] == {"rebuilt": True, "upserted": 5, "removed": 0}
    assert _index(se) == _rescan(se)
    assert _index(se)[ids[0]]["tags"] == ["kept"]
    assert client.post("/maintenance/reconcile", json={}).json()["consistent"] is True
    listed = client.get("/files", params={"limit": 100}).json()["items"]
    assert {item["file_id"] for item in listed} == set(ids)


def test_index_rows_edited_behind_the_elements_back_are_reported_stale_and_rebuilt(make_se, client_for):
    se = make_se("rw")
    client = client_for(se)
    (file_id,) = _upload(client, 1)
    query(
        se.database_url,
        f"""UPDATE "{_schema(se)}".file_index SET attributes = jsonb_set(attributes, '{{description}}', '"tampered"')""",
    )
    ghost = uuid.uuid4()
    query(
        se.database_url,
        f'INSERT INTO "{_schema(se)}".file_index SELECT $1, original_filename, content_type, size_bytes, '
        f'sha256, status, saga_id, created_at, updated_at, attributes, indexed_at FROM "{_schema(se)}".file_index',
        ghost,
    )
    report = client.post("/maintenance/reconcile", json={}).json()
    assert report["summary"] == {"index_stale": 1, "index_orphan": 1}
    client.post("/maintenance/reconcile", json={"rebuild_index": True})
    assert _index(se) == _rescan(se)
    assert _index(se)[file_id]["description"] == ""
