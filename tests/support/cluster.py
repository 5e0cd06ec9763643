"""A small cluster as real processes for the ingester's, the query module's and the fault tests: admin, an `edit`
and an `rw` element registered with it, an ingester acting as a system account and, when asked for, query
modules with a system account of their own; Redis keys under a namespace of its own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil

from tests.support.files import files_on_disk
from tests.support.infra import Infra, own_namespace, query
from tests.support.processes import (
    AdminModule,
    ServiceProcess,
    StorageElement,
    admin_module,
    ingester_module,
    query_module,
    storage_element,
)

if TYPE_CHECKING:
    from artstore_client import Client


def _api(admin: AdminModule, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{admin.url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


@dataclass
class ElementSpec:
    mode: str
    settings: dict[str, Any] = field(default_factory=dict)  # ARTSTORE_SE_* of this element
    registration: dict[str, Any] = field(default_factory=dict)  # e.g. {"priority": 200}


@dataclass
class Cluster:
    admin: AdminModule
    elements: dict[str, StorageElement]  # by mode ("edit", "rw"); a second of a mode is "rw2"
    ingester: ServiceProcess
    namespace: str
    system_account: tuple[str, str]
    redis_url: str = ""
    log_dir: Path = Path()
    queries: list[ServiceProcess] = field(default_factory=list)
    query_settings: dict[str, Any] = field(default_factory=dict)
    _processes: list[Any] = field(default_factory=list)
    _accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    _clients: list[httpx.Client] = field(default_factory=list)

    def account(self, role: str = "USER") -> dict[str, str]:
        """A service account of `role` (made once per cluster): id, client_id, client_secret."""
        if role not in self._accounts:
            with _api(self.admin, self.admin.token()) as api:
                made = api.post(
                    "/service-accounts", json={"name": f"{role.lower()}-{uuid.uuid4().hex[:6]}", "role": role}
                )
            assert made.status_code == 201, made.text
            self._accounts[role] = made.json()
        return self._accounts[role]

    def token(self, role: str = "USER") -> str:
        account = self.account(role)
        return self.admin.token(account["client_id"], account["client_secret"])

    def client(self, role: str = "USER", *, timeout: float = 600) -> httpx.Client:
        client = httpx.Client(
            base_url=f"{self.ingester.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token(role)}"},
            timeout=timeout,
        )
        self._clients.append(client)
        return client

    @property
    def query(self) -> ServiceProcess:
        """The first query module (started with the cluster when `queries` >= 1)."""
        assert self.queries, "this cluster was made without a query module (make(queries=1))"
        return self.queries[0]

    def add_query(self, *, start: bool = True, **settings: Any) -> ServiceProcess:
        """Another query module on the same catalog and Redis namespace, with its own system account."""
        client_id, secret = system_account(self.admin, f"query-{uuid.uuid4().hex[:6]}", role="READONLY")
        process = query_module(
            admin=self.admin,
            client_id=client_id,
            client_secret=secret,
            redis_url=self.redis_url,
            redis_namespace=self.namespace,
            log_dir=self.log_dir,
            name=f"query-{self.admin.schema}-{len(self.queries) + 1}",
            **{**self.query_settings, **settings},
        )
        self._processes.append(process)
        self.queries.append(process)
        if start:
            process.start()
        return process

    def query_client(self, role: str = "USER", *, process: ServiceProcess | None = None) -> httpx.Client:
        client = httpx.Client(
            base_url=f"{(process or self.query).url}/api/v1",
            headers={"Authorization": f"Bearer {self.token(role)}"},
            timeout=600,
        )
        self._clients.append(client)
        return client

    def sdk(self, account: dict[str, str], **options: Any) -> Client:
        """An SDK client of this cluster as `account` ({"client_id", "client_secret"}); `options` go to
        Client and may replace the ingester or query URL."""
        from artstore_client import Client

        urls = {"ingester_url": self.ingester.url, "query_url": self.query.url}
        return Client(self.admin.url, account["client_id"], account["client_secret"], **{**urls, **options})

    def catalog(self, file_id: str) -> list[Any]:
        return query(
            self.admin.database_url,
            f'SELECT * FROM "{self.admin.schema}".files WHERE file_id = $1',
            uuid.UUID(file_id),
        )

    def catalog_count(self) -> int:
        rows = query(self.admin.database_url, f'SELECT count(*) AS n FROM "{self.admin.schema}".files')
        return int(rows[0]["n"])

    def sagas(self, **where: Any) -> list[Any]:
        clauses = " AND ".join(f"{name} = ${i + 1}" for i, name in enumerate(where)) or "TRUE"
        return query(
            self.admin.database_url,
            f'SELECT * FROM "{self.admin.schema}".sagas WHERE {clauses} ORDER BY created_at',
            *where.values(),
        )

    def unused_reservations(self) -> list[Any]:
        """Upload sagas the ingester started ahead and still holds for uploads to come."""
        return [saga for saga in self.sagas(type="upload", status="started") if _reserved(saga)]

    def sagas_in_use(self, **where: Any) -> list[Any]:
        """`sagas(**where)` but for reservations held or released unused: the sagas of uploads, updates and
        deletes (one still held by a running upload cannot be told from an unused one, and is left out)."""
        return [saga for saga in self.sagas(**where) if not _unused_reservation(saga)]

    def stored_files(self) -> dict[str, list[Path]]:
        """Every stored file (its .bin; attr.json files beside them are not counted) on every element, by name."""
        return {
            name: [path for path in files_on_disk(se.data_dir) if path.suffix == ".bin"]
            for name, se in self.elements.items()
        }

    def ingester_rss(self) -> int:
        return int(psutil.Process(self.ingester.pid).memory_info().rss)

    def metrics(self) -> str:
        return httpx.get(f"{self.ingester.url}/metrics", timeout=10).text

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _reserved(saga: Any) -> bool:
    return bool(json.loads(saga["payload"]).get("reservation"))


def _unused_reservation(saga: Any) -> bool:
    released = saga["status"] == "compensated" and "released unused" in (saga["error"] or "")
    return _reserved(saga) and (saga["status"] == "started" or released)


def system_account(admin: AdminModule, name: str, *, role: str = "USER") -> tuple[str, str]:
    with _api(admin, admin.token()) as api:
        made = api.post("/service-accounts", json={"name": name, "role": role, "is_system": True})
    assert made.status_code == 201, made.text
    return made.json()["client_id"], made.json()["client_secret"]


def register(admin: AdminModule, se: StorageElement, **fields: Any) -> None:
    with _api(admin, admin.token()) as api:
        response = api.post("/storage-elements", json={"url": se.url, **fields})
    assert response.status_code == 201, response.text


ClusterFactory = Callable[..., Cluster]


def cluster_factory(infra: Infra, base: Path, made: list[tuple[Cluster | None, list[Any]]]) -> ClusterFactory:
    def make(
        *,
        modes: tuple[str | ElementSpec, ...] = ("edit", "rw"),
        admin_settings: dict[str, Any] | None = None,
        se_settings: dict[str, Any] | None = None,
        ingester_settings: dict[str, Any] | None = None,
        start_ingester: bool = True,
        queries: int = 0,
        query_settings: dict[str, Any] | None = None,
    ) -> Cluster:
        processes: list[Any] = []
        made.append((None, processes))
        namespace = own_namespace("cluster")
        schema = f"admin_{uuid.uuid4().hex[:10]}"
        admin = admin_module(
            database_url=infra.database_url,
            redis_url=infra.redis_url,
            redis_namespace=namespace,
            log_dir=base,
            name=schema,
            schema=schema,
            **(admin_settings or {}),
        )
        processes.append(admin)
        admin.start()
        elements: dict[str, StorageElement] = {}
        for spec in modes:
            spec = spec if isinstance(spec, ElementSpec) else ElementSpec(spec)
            mode = spec.mode
            name = mode if mode not in elements else f"{mode}{sum(k.startswith(mode) for k in elements) + 1}"
            element_id = f"se-{name}-{uuid.uuid4().hex[:6]}"
            elements[name] = storage_element(
                element_id=element_id,
                data_dir=base / element_id,
                database_url=infra.database_url,
                redis_url=infra.redis_url,
                redis_namespace=namespace,
                jwks_url=admin.jwks_url,
                log_dir=base,
                mode=mode,
                **{**(se_settings or {}), **spec.settings},
            )
            processes.append(elements[name])
            elements[name].start()
            register(admin, elements[name], **spec.registration)
        account = system_account(admin, f"ingester-{uuid.uuid4().hex[:6]}")
        ingester = ingester_module(
            admin=admin,
            client_id=account[0],
            client_secret=account[1],
            redis_url=infra.redis_url,
            redis_namespace=namespace,
            log_dir=base,
            name=f"ingester-{schema}",
            **(ingester_settings or {}),
        )
        processes.append(ingester)
        if start_ingester:
            ingester.start()
        cluster = Cluster(
            admin,
            elements,
            ingester,
            namespace,
            account,
            redis_url=infra.redis_url,
            log_dir=base,
            query_settings=dict(query_settings or {}),
            _processes=processes,
        )
        made[-1] = (cluster, processes)
        for _ in range(queries):
            cluster.add_query()
        return cluster

    return make


def stop_clusters(made: list[tuple[Cluster | None, list[Any]]]) -> None:
    for cluster, processes in made:
        if cluster is not None:
            cluster.close()
        for process in reversed(processes):
            process.stop()


def wait_for(probe: Callable[[], Any], *, within: float, what: str, every: float = 0.2) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s (last: {value!r})")
        time.sleep(every)


def attributes_header(**attributes: Any) -> dict[str, str]:
    return {"X-Artstore-Attributes": json.dumps(attributes)}
