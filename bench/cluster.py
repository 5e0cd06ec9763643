"""One storage element as a real process, with PostgreSQL, Redis and a token issuer, as the tests run it.

For the ingester suite, a small cluster the same way: admin, one element, an ingester. For the query suite,
the tests' own cluster (tests.support.cluster) with two query modules.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from tests.support.cluster import Cluster, cluster_factory, stop_clusters
from tests.support.infra import test_infra
from tests.support.issuer import TestIssuer
from tests.support.processes import (
    AdminModule,
    ServiceProcess,
    StorageElement,
    admin_module,
    ingester_module,
    storage_element,
)

ELEMENT_ID = "se-bench"


@dataclass(frozen=True)
class Target:
    element: StorageElement
    token: str
    database: str
    postgres: str
    redis: str

    @property
    def api_url(self) -> str:
        return f"{self.element.url}/api/v1"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def storage_element_under_test(workdir: Path) -> Iterator[Target]:
    """The element's data under `workdir`, so it sits on the disk the baselines use.

    PostgreSQL and Redis are placed by tests.support as for the tests (PostgreSQL in a temp directory of
    its own, or the server ARTSTORE_TEST_DATABASE_URL names).
    """
    issuer = TestIssuer().start()
    try:
        with test_infra(workdir / "infra") as infra:
            element = storage_element(
                element_id=ELEMENT_ID,
                data_dir=workdir / "se",
                database_url=infra.database_url,
                redis_url=infra.redis_url,
                redis_namespace=infra.redis_namespace,
                jwks_url=issuer.url,
                log_dir=workdir,
                mode="rw",
            )
            element.start()
            try:
                yield Target(
                    element=element,
                    token=issuer.token(lifetime=3600),
                    database=urlsplit(infra.database_url).path.lstrip("/"),
                    postgres="external" if os.environ.get("ARTSTORE_TEST_DATABASE_URL") else "embedded",
                    redis="external" if os.environ.get("ARTSTORE_TEST_REDIS_URL") else "embedded",
                )
            finally:
                element.stop()
    finally:
        issuer.stop()


INGESTER_ELEMENT_ID = "se-bench-rw"
# The client's own budget, high enough never to bind: the limiter still runs on every request, as in service.
_UNBOUNDED_PER_MINUTE = 1_000_000


@dataclass(frozen=True)
class Account:
    client_id: str
    client_secret: str


@dataclass(frozen=True)
class IngestCluster:
    """admin, one `rw` element registered with it, an ingester as a system account, and a client account."""

    admin: AdminModule
    element: StorageElement
    ingester: ServiceProcess
    system: Account
    client: Account
    database: str
    postgres: str
    redis: str

    def token(self, account: Account) -> str:
        return self.admin.token(account.client_id, account.client_secret)

    @property
    def ingester_api(self) -> str:
        return f"{self.ingester.url}/api/v1"

    def element_target(self) -> Target:
        """The element as the storage suite's workloads address it, with the ingester's own token."""
        return Target(self.element, self.token(self.system), self.database, self.postgres, self.redis)


def _admin_post(admin: AdminModule, path: str, document: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(
        f"{admin.url}/api/v1{path}",
        json=document,
        headers={"Authorization": f"Bearer {admin.token()}"},
        timeout=30,
    )
    if response.status_code != 201:
        raise RuntimeError(f"POST {path}: HTTP {response.status_code}: {response.text[:500]}")
    answer: dict[str, Any] = response.json()
    return answer


def _account(admin: AdminModule, **fields: Any) -> Account:
    made = _admin_post(admin, "/service-accounts", {"role": "USER", **fields})
    return Account(made["client_id"], made["client_secret"])


def _wait_for_first_upload(cluster: IngestCluster, within: float = 60) -> None:
    _wait_for_upload(cluster.ingester, cluster.token(cluster.client), within)


def _wait_for_upload(ingester: ServiceProcess, token: str, within: float = 60) -> None:
    """Until an upload lands: the ingester is ready once its discovery snapshot names the element, but the
    element is a candidate only after the admin has seen it online, a poll or two later."""
    headers = {"Authorization": f"Bearer {token}", "X-Artstore-Filename": "probe.bin"}
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            response = httpx.post(
                f"{ingester.url}/api/v1/files", content=b"probe", headers=headers, timeout=10
            )
            if response.status_code == 201:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        time.sleep(0.2)
    raise TimeoutError(f"no upload through the ingester within {within} s ({last}):\n{ingester.log_tail()}")


@contextmanager
def ingester_cluster_under_test(workdir: Path) -> Iterator[IngestCluster]:
    """Every process real and started as tests/ingester/conftest.py starts them; data under `workdir`."""
    with test_infra(workdir / "infra") as infra, ExitStack() as running:
        admin = admin_module(
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            log_dir=workdir,
            name="admin-bench",
            schema="admin_bench",
        )
        running.callback(admin.stop)  # also when start() gives up on a process it did launch
        admin.start()
        element = storage_element(
            element_id=INGESTER_ELEMENT_ID,
            data_dir=workdir / "se",
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            jwks_url=admin.jwks_url,
            log_dir=workdir,
            mode="rw",
        )
        running.callback(element.stop)
        element.start()
        _admin_post(admin, "/storage-elements", {"url": element.url})
        system = _account(admin, name="bench-ingester", is_system=True)
        client = _account(
            admin,
            name="bench-client",
            rate_limit_per_minute=_UNBOUNDED_PER_MINUTE,
            rate_limit_burst=_UNBOUNDED_PER_MINUTE,
        )
        ingester = ingester_module(
            admin=admin,
            client_id=system.client_id,
            client_secret=system.client_secret,
            redis_url=infra.redis_url,
            redis_namespace=infra.redis_namespace,
            log_dir=workdir,
            name="ingester-bench",
        )
        running.callback(ingester.stop)
        ingester.start()
        cluster = IngestCluster(
            admin=admin,
            element=element,
            ingester=ingester,
            system=system,
            client=client,
            database=urlsplit(infra.database_url).path.lstrip("/"),
            postgres="external" if os.environ.get("ARTSTORE_TEST_DATABASE_URL") else "embedded",
            redis="external" if os.environ.get("ARTSTORE_TEST_REDIS_URL") else "embedded",
        )
        _wait_for_first_upload(cluster)
        yield cluster


@dataclass(frozen=True)
class QueryCluster:
    """admin, one `rw` element, an ingester and two query modules on one catalog and one Redis namespace.

    `reader` runs with the default TTLs; `revalidating` trusts no catalog row (l3_ttl_seconds=0), so each
    of its reads past L2 goes to the element's attr.json (L4). `client` is a USER account whose rate limit
    never binds.
    """

    cluster: Cluster
    reader: ServiceProcess
    revalidating: ServiceProcess
    client: Account
    database: str
    postgres: str
    redis: str

    @property
    def admin(self) -> AdminModule:
        return self.cluster.admin

    @property
    def element(self) -> StorageElement:
        return self.cluster.elements["rw"]

    @property
    def ingester(self) -> ServiceProcess:
        return self.cluster.ingester

    def token(self) -> str:
        return self.admin.token(self.client.client_id, self.client.client_secret)

    def element_target(self) -> Target:
        """The element as the storage suite's helpers address it, with the client's token."""
        return Target(self.element, self.token(), self.database, self.postgres, self.redis)


def _wait_until_ready(process: ServiceProcess, within: float = 60) -> None:
    """/health/ready: a query module serves downloads only once its discovery snapshot names an element."""
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            response = httpx.get(f"{process.url}/health/ready", timeout=5)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        time.sleep(0.2)
    raise TimeoutError(f"{process.module} not ready within {within} s ({last}):\n{process.log_tail()}")


@contextmanager
def query_cluster_under_test(workdir: Path) -> Iterator[QueryCluster]:
    """Every process real and started as tests/query/conftest.py starts them; data and logs under `workdir`."""
    with test_infra(workdir / "infra") as infra:
        made: list[tuple[Cluster | None, list[Any]]] = []
        try:
            cluster = cluster_factory(infra, workdir, made)(modes=("rw",), queries=1)
            revalidating = cluster.add_query(l3_ttl_seconds=0)
            client = _account(
                cluster.admin,
                name="bench-query-client",
                rate_limit_per_minute=_UNBOUNDED_PER_MINUTE,
                rate_limit_burst=_UNBOUNDED_PER_MINUTE,
            )
            for process in cluster.queries:
                _wait_until_ready(process)
            running = QueryCluster(
                cluster=cluster,
                reader=cluster.queries[0],
                revalidating=revalidating,
                client=client,
                database=urlsplit(infra.database_url).path.lstrip("/"),
                postgres="external" if os.environ.get("ARTSTORE_TEST_DATABASE_URL") else "embedded",
                redis="external" if os.environ.get("ARTSTORE_TEST_REDIS_URL") else "embedded",
            )
            _wait_for_upload(running.ingester, running.token())
            yield running
        finally:
            stop_clusters(made)
