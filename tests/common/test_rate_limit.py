"""Per-account rate limits (DESIGN section 8) on real admin processes sharing one Redis."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from artstore_common.embedded import EmbeddedRedis
from tests.support.infra import Infra
from tests.support.issuer import new_key
from tests.support.processes import AdminModule, admin_module

BURST, PER_MINUTE = 150, 100
LISTING = "/api/v1/service-accounts"  # any endpoint the bootstrap ADMIN may call


@pytest.fixture
def make_admin(infra: Infra, tmp_path: Path) -> Iterator[Callable[..., AdminModule]]:
    started: list[AdminModule] = []

    def make(*, schema: str | None = None, **settings: Any) -> AdminModule:
        admin = admin_module(
            database_url=infra.database_url,
            redis_url=settings.pop("redis_url", infra.redis_url),
            redis_namespace=infra.redis_namespace,
            log_dir=tmp_path,
            name=f"admin-{len(started)}",
            schema=schema or f"admin_{uuid.uuid4().hex[:10]}",
            **settings,
        )
        started.append(admin)
        return admin.start()  # type: ignore[return-value]

    yield make
    for admin in started:
        admin.stop()


def _client(admin: AdminModule, token: str) -> httpx.Client:
    return httpx.Client(base_url=admin.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _until_refused(client: httpx.Client, limit: int = 400) -> tuple[int, httpx.Response]:
    for sent in range(limit):
        response = client.get(LISTING)
        if response.status_code == 429:
            return sent, response
        assert response.status_code == 200, response.text
    raise AssertionError(f"no 429 after {limit} requests")


def _assert_burst(successes: int, started: float) -> None:
    # The bucket refills while the test sends: a few more than the burst may pass, never fewer.
    elapsed = time.monotonic() - started
    assert BURST <= successes <= BURST + int(elapsed * PER_MINUTE / 60) + 1, (successes, elapsed)


def _assert_refusal(refused: httpx.Response) -> None:
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Limit"] == str(BURST)
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= 1


def test_an_account_gets_its_burst_then_429(make_admin) -> None:
    admin = make_admin()
    started = time.monotonic()
    with _client(admin, admin.token()) as client:
        first = client.get(LISTING)
        assert first.status_code == 200
        assert first.headers["RateLimit-Remaining"] == str(BURST - 1)
        assert first.headers["RateLimit-Policy"] == f"{PER_MINUTE};w=60;burst={BURST}"
        successes, refused = _until_refused(client)
    _assert_burst(successes + 1, started)
    _assert_refusal(refused)


def test_two_admins_share_one_budget_through_redis(make_admin) -> None:
    schema = f"admin_{uuid.uuid4().hex[:10]}"
    one, two = make_admin(schema=schema), make_admin(schema=schema)
    token = one.token()
    started = time.monotonic()
    with _client(one, token) as first, _client(two, token) as second:
        for _ in range(BURST // 2):
            assert first.get(LISTING).status_code == 200
            assert second.get(LISTING).status_code == 200
        successes, refused = _until_refused(second)
        emptied = time.monotonic()
        # The account is out of budget everywhere, not only where it spent the last request: the other admin
        # lets through only what the bucket refilled since, plus up to two (the token's fraction left at the
        # refusal, and the moment before `emptied` was read), not the 75 a budget of its own would hold.
        passed, _ = _until_refused(first)
        refilled = int((time.monotonic() - emptied) * PER_MINUTE / 60)
        assert passed <= refilled + 2, (passed, refilled)
    _assert_burst(BURST + successes, started)
    _assert_refusal(refused)


def test_a_forged_token_is_refused_and_spends_nothing(make_admin) -> None:
    admin = make_admin()
    real = admin.token()
    claims = jwt.decode(real, options={"verify_signature": False})
    # The same account, kid and claims, signed by a key the admin never made.
    forged = jwt.encode(claims, new_key(), algorithm="RS256", headers=jwt.get_unverified_header(real))
    with _client(admin, forged) as client:
        for _ in range(BURST + 10):
            response = client.get(LISTING)
            assert response.status_code == 401
            assert "RateLimit-Remaining" not in response.headers
    with _client(admin, real) as client:
        assert client.get(LISTING).headers["RateLimit-Remaining"] == str(BURST - 1)


def test_with_redis_down_each_admin_still_limits(make_admin, tmp_path: Path) -> None:
    spare = EmbeddedRedis(tmp_path / "spare-redis").start()
    try:
        admin = make_admin(redis_url=spare.url)
    finally:
        spare.stop()  # Redis is gone for good: the service must limit on its own
    token = admin.token()
    started = time.monotonic()
    with _client(admin, token) as client:
        successes, refused = _until_refused(client)
    _assert_burst(successes, started)
    _assert_refusal(refused)
    # Refusing quickly, not hanging on Redis: the whole burst took a few seconds at most.
    assert time.monotonic() - started < 30
