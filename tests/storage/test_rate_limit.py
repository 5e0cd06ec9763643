"""Per-account rate limits on a storage element (DESIGN section 8), with tokens from the test issuer."""

import json
import time
import uuid

import httpx
import redis

from artstore_common.embedded import EmbeddedRedis
from tests.support.issuer import new_key

READER = ["storage:read", "files:read"]
BURST, PER_MINUTE = 150, 100


def _client(se, token):
    return httpx.Client(base_url=se.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _until_refused(client, limit=400):
    """Requests until the first 429: (successes, the 429 response, seconds it took)."""
    started = time.monotonic()
    for sent in range(limit):
        response = client.get("/info")
        if response.status_code == 429:
            return sent, response, time.monotonic() - started
        assert response.status_code == 200, response.text
    raise AssertionError(f"no 429 after {limit} requests")


def _assert_burst(successes, elapsed, burst=BURST, per_minute=PER_MINUTE):
    # The bucket refills while the test sends: a few more than the burst may pass, never fewer.
    assert burst <= successes <= burst + int(elapsed * per_minute / 60) + 1, (successes, elapsed)


def test_an_account_gets_its_burst_then_429_with_retry_after(shared_se, issuer):
    with _client(shared_se, issuer.token(sub=f"acct-{uuid.uuid4().hex}", permissions=READER)) as client:
        first = client.get("/info")
        assert first.status_code == 200
        assert first.headers["RateLimit-Limit"] == str(BURST)
        assert first.headers["RateLimit-Remaining"] == str(BURST - 1)
        assert first.headers["RateLimit-Policy"] == f"{PER_MINUTE};w=60;burst={BURST}"
        successes, refused, elapsed = _until_refused(client)
    _assert_burst(successes + 1, elapsed)
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["RateLimit-Remaining"] == "0"
    assert int(refused.headers["RateLimit-Reset"]) >= int(refused.headers["Retry-After"])


def test_a_forged_token_is_refused_and_spends_nothing_of_the_real_budget(shared_se, issuer):
    sub = f"acct-{uuid.uuid4().hex}"
    forged = issuer.token(sub=sub, permissions=READER, key=new_key())
    with _client(shared_se, forged) as client:
        for _ in range(BURST + 10):
            response = client.get("/info")
            assert response.status_code == 401
            assert "RateLimit-Remaining" not in response.headers
    with _client(shared_se, issuer.token(sub=sub, permissions=READER)) as client:
        assert client.get("/info").headers["RateLimit-Remaining"] == str(BURST - 1)


def test_two_elements_share_one_budget_through_redis(make_se, issuer):
    first, second = make_se("rw"), make_se("rw")
    token = issuer.token(sub=f"acct-{uuid.uuid4().hex}", permissions=READER)
    started = time.monotonic()
    with _client(first, token) as one, _client(second, token) as two:
        for _ in range(BURST // 2):
            assert one.get("/info").status_code == 200
            assert two.get("/info").status_code == 200
        successes, refused, _ = _until_refused(two)
        # Out of budget everywhere, not only on `two`: `one` lets through only what the bucket refilled since
        # (`two` was refused with up to a token's fraction left), not the half a budget of its own would hold.
        passed, _, since = _until_refused(one)
        assert passed <= int(since * PER_MINUTE / 60) + 2, (passed, since)  # +2: that fraction, and the gap
    _assert_burst(BURST + successes, time.monotonic() - started)
    assert refused.json()["code"] == "RATE_LIMITED"


def test_a_per_account_override_from_redis_applies(shared_se, issuer, infra):
    sub = f"acct-{uuid.uuid4().hex}"
    with redis.Redis.from_url(infra.redis_url) as r:
        r.hset(f"{infra.redis_namespace}:ratelimit:accounts", sub, json.dumps({"per_minute": 6, "burst": 5}))
    with _client(shared_se, issuer.token(sub=sub, permissions=READER)) as client:
        successes, refused, _ = _until_refused(client)
    assert successes == 5
    assert refused.headers["RateLimit-Limit"] == "5"
    assert int(refused.headers["Retry-After"]) >= 5  # one token every 10 s at 6 a minute, minus a little


def test_system_accounts_with_internal_are_not_limited(shared_se, issuer):
    with _client(shared_se, issuer.token(sub=f"ingester-{uuid.uuid4().hex}")) as client:
        for _ in range(BURST + 20):
            response = client.get("/info")
            assert response.status_code == 200
            assert "RateLimit-Remaining" not in response.headers


def test_with_redis_down_each_process_still_limits(make_se, issuer, tmp_path):
    spare = EmbeddedRedis(tmp_path / "spare-redis").start()
    try:
        se = make_se("rw", redis_url=spare.url)
    finally:
        spare.stop()  # Redis is gone for good: the service must limit on its own
    token = issuer.token(sub=f"acct-{uuid.uuid4().hex}", permissions=READER)
    with _client(se, token) as client:
        successes, refused, elapsed = _until_refused(client)
    _assert_burst(successes, elapsed)
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
