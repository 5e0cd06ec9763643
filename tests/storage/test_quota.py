import asyncio
import uuid

import httpx

QUOTA = 10 * 1024 * 1024
SIZE = 1024 * 1024


async def _upload_many(se, token, count):
    async with httpx.AsyncClient(base_url=se.url + "/api/v1", timeout=60) as client:

        async def one(i):
            async def body():
                for _ in range(8):
                    yield b"q" * (SIZE // 8)
                    await asyncio.sleep(0.01)  # keep uploads overlapping

            headers = {"Authorization": f"Bearer {token}", "X-Artstore-Filename": f"{i}.bin"}
            if i % 2:
                headers["Content-Length"] = str(SIZE)  # half declare their size, half stream unknown sizes
            return await client.put(f"/files/{uuid.uuid4()}", content=body(), headers=headers)

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_concurrent_uploads_never_overfill_the_quota(make_se, client_for, admin_token):
    se = make_se("rw", quota_bytes=QUOTA)
    responses = asyncio.run(_upload_many(se, admin_token, 25))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 507}, statuses
    assert statuses.count(507) > 0
    accepted = statuses.count(201)
    assert 0 < accepted <= QUOTA // SIZE
    for refused in (r for r in responses if r.status_code == 507):
        assert refused.json()["code"] == "INSUFFICIENT_STORAGE"

    info = client_for(se).get("/info").json()
    capacity = info["capacity"]
    assert capacity["used"] == accepted * SIZE <= QUOTA
    assert capacity["total"] == QUOTA
    assert capacity["reserved"] == 0
    assert capacity["free"] == QUOTA - capacity["used"]
    assert info["file_count"] == accepted
    stored = sum(p.stat().st_size for p in (se.data_dir / "files").rglob("*.bin"))
    assert stored == capacity["used"]
    assert list((se.data_dir / "tmp").iterdir()) == []
