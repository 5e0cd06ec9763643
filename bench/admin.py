"""The admin benchmark: tokens issued per second (client credentials over HTTP against a real admin process)
and tokens verified per second (JwksVerifier.verify on distinct tokens, so each is a full RS256 check).

Each beside its in-process baseline measured in the same run: the scrypt secret check every issue pays, and
a bare PyJWT RS256 decode.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from tests.support.infra import test_infra
from tests.support.processes import admin_module

from artstore_admin.identity.secret_hash import hash_secret_sync, verify_secret_sync
from artstore_common.auth import JwksVerifier
from bench.report import Goal, Log, Metric, machine_info, table


async def _issue_many(
    url: str, auth: tuple[str, str], count: int, concurrency: int
) -> tuple[float, list[str]]:
    tokens: list[str] = []
    queue = iter(range(count))
    async with httpx.AsyncClient(timeout=30) as client:

        async def worker() -> None:
            for _ in queue:
                response = await client.post(url, data={"grant_type": "client_credentials"}, auth=auth)
                response.raise_for_status()
                tokens.append(response.json()["access_token"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return count / (time.perf_counter() - started), tokens


def _scrypt_checks_per_second(count: int, workers: int) -> float:
    stored = hash_secret_sync("bench-secret")
    with ThreadPoolExecutor(workers) as pool:
        started = time.perf_counter()
        list(pool.map(lambda _: verify_secret_sync("bench-secret", stored), range(count)))
        return count / (time.perf_counter() - started)


async def _verify_rate(jwks_url: str, tokens: list[str], audience: str) -> float:
    async with httpx.AsyncClient(timeout=10) as http:
        # A fresh verifier: its verified-token cache is empty, so every call is a full RS256 check.
        verifier = JwksVerifier(jwks_url=jwks_url, issuer="artstore-admin", audience=audience, http=http)
        await verifier.refresh()
        started = time.perf_counter()
        for token in tokens:
            await verifier.verify(token)
        return len(tokens) / (time.perf_counter() - started)


def _bare_decode_rate(jwks: dict[str, Any], tokens: list[str]) -> float:
    keys = {k["kid"]: jwt.PyJWK(k, algorithm="RS256").key for k in jwks["keys"]}
    started = time.perf_counter()
    for token in tokens:
        kid = jwt.get_unverified_header(token)["kid"]
        jwt.decode(token, keys[kid], algorithms=["RS256"], audience="admin", issuer="artstore-admin")
    return len(tokens) / (time.perf_counter() - started)


def run(workdir: Path, *, quick: bool, log: Log) -> tuple[list[Metric], dict[str, Any]]:
    issue_count, rounds, concurrency = (60, 1, 8) if quick else (300, 3, 8)
    workers = os.cpu_count() or 1
    with test_infra(workdir / "infra") as infra:
        admin = admin_module(
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            log_dir=workdir,
            name="admin-bench",
            schema="admin_bench",
        )
        admin.start()
        try:
            auth = (admin.client_id, admin.client_secret)
            issued: list[float] = []
            tokens: list[str] = []
            for number in range(1, rounds + 1):
                log(f"round {number}: {issue_count} tokens by client credentials, {concurrency} concurrent")
                rate, batch = asyncio.run(_issue_many(admin.token_url, auth, issue_count, concurrency))
                issued.append(rate)
                tokens += batch
            scrypt = [_scrypt_checks_per_second(max(issue_count // 2, 20), workers) for _ in range(rounds)]
            jwks = httpx.get(admin.jwks_url, timeout=10).json()
            verified = [asyncio.run(_verify_rate(admin.jwks_url, tokens, "admin")) for _ in range(rounds)]
            bare = [_bare_decode_rate(jwks, tokens) for _ in range(rounds)]
        finally:
            admin.stop()
    metrics = [
        Metric(
            name="admin_tokens_issued",
            title="tokens issued (HTTP, client credentials)",
            unit="tokens/s",
            value=statistics.median(issued),
            baseline_name=f"scrypt secret checks in-process on {workers} threads",
            baseline=statistics.median(scrypt),
            goal=Goal("ratio", 0.5, ">= 0.5 x scrypt checks/s"),
            samples=issued,
            baseline_samples=scrypt,
            details={"tokens_per_round": issue_count, "concurrency": concurrency},
        ),
        Metric(
            name="admin_tokens_verified",
            title="tokens verified (JwksVerifier, distinct tokens)",
            unit="tokens/s",
            value=statistics.median(verified),
            baseline_name="bare PyJWT RS256 decode",
            baseline=statistics.median(bare),
            goal=Goal("ratio", 0.7, ">= 0.7 x bare decode"),
            samples=verified,
            baseline_samples=bare,
            details={"distinct_tokens": len(tokens)},
        ),
    ]
    setup = {
        "admin": "python -m artstore_admin (real process)",
        "secret_hash": hash_secret_sync("x").rsplit("$", 2)[0],  # scheme and cost parameters, no salt
    }
    return metrics, setup


def main(results_dir: Path, workdir: Path, *, quick: bool, log: Log) -> list[Metric]:
    started = datetime.now(UTC)
    clock = time.perf_counter()
    metrics, setup = run(workdir, quick=quick, log=log)
    document = {
        "benchmark": "admin",
        "profile": "quick" if quick else "full",
        "started_at": started.isoformat(),
        "duration_seconds": round(time.perf_counter() - clock, 1),
        "machine": machine_info(workdir),
        "setup": setup,
        "metrics": [m.as_dict() for m in metrics],
        "all_targets_met": all(m.met for m in metrics),
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    (results_dir / f"admin-{started.strftime('%Y%m%dT%H%M%SZ')}.json").write_text(text)
    (results_dir / "latest-admin.json").write_text(text)
    log(table(metrics))
    return metrics
