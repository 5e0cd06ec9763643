"""One storage element as a real process, with PostgreSQL, Redis and a token issuer, as the tests run it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.infra import test_infra
from tests.support.issuer import TestIssuer
from tests.support.processes import StorageElement, storage_element

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
