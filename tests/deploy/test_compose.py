"""docker-compose.yml, .env.example, .dockerignore and the Dockerfiles, read as files (no Docker here): what
`docker compose up` would trip over, or start wrongly, after the operator filled in .env."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.deploy import _checks as checks
from tools.config_reference import setting_variables

SERVICE_DOCKERFILES = {
    "admin-module/Dockerfile": "artstore_admin",
    "storage-element/Dockerfile": "artstore_storage",
    "ingester-module/Dockerfile": "artstore_ingester",
    "query-module/Dockerfile": "artstore_query",
}

COMPOSE_CHECKS: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "builds": checks.check_builds,
    "dockerfiles": checks.check_dockerfiles,
    "healthchecks": checks.check_healthchecks,
    "depends_on": checks.check_depends_on,
    "settings names": checks.check_settings_names,
    "secrets from .env": checks.check_secrets_from_env,
    "ports and urls": checks.check_ports_and_urls,
    "storage elements": checks.check_storage_elements,
    "shared settings": checks.check_shared_settings,
    "required settings": checks.check_required_settings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return checks.load_compose()


@pytest.mark.parametrize("check", list(COMPOSE_CHECKS))
def test_the_compose_file_passes(compose: dict[str, Any], check: str) -> None:
    assert COMPOSE_CHECKS[check](compose) == []


def test_it_runs_the_services_design_names(compose: dict[str, Any]) -> None:
    table = checks.services(compose)
    packages = sorted(str(s.package) for s in table.values() if s.package in checks.DESIGN_PORTS)
    assert packages == sorted(
        ["artstore_admin", "artstore_storage", "artstore_storage", "artstore_ingester", "artstore_query"]
    )
    images = sorted(
        str(s.spec.get("image", "")).partition(":")[0] for s in table.values() if "image" in s.spec
    )
    assert images == ["postgres", "redis"]
    assert set(compose["volumes"]) >= {"postgres-data", "redis-data"}


def test_every_variable_is_documented_and_secrets_are_required() -> None:
    assert checks.check_variables(checks.COMPOSE.read_text()) == []
    required = {name for name, is_required in checks.env_example_variables().items() if is_required}
    assert required == {"POSTGRES_PASSWORD", "ADMIN_KEY_ENCRYPTION_KEY", "ADMIN_BOOTSTRAP_CLIENT_SECRET"}


@pytest.mark.parametrize("path", list(SERVICE_DOCKERFILES))
def test_each_service_dockerfile(path: str) -> None:
    dockerfile = checks.parse_dockerfile(checks.ROOT / path)
    assert checks.check_dockerfile(dockerfile) == []
    assert dockerfile.command() == ["python", "-m", SERVICE_DOCKERFILES[path]]


def test_the_build_context_leaves_out_what_does_not_belong_in_an_image() -> None:
    patterns = checks.ignore_patterns()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        ".env",
        "tests/conftest.py",
        "bench/results/run.json",
        ".artstore/dev/credentials.json",
        "common/src/artstore_common/__pycache__/settings.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
    ):
        assert checks.ignored(path, patterns), path
    for path in ("constraints.txt", "common/pyproject.toml", "storage-element/src/artstore_storage/app.py"):
        assert not checks.ignored(path, patterns), path


# ---- each check catches what it is for -------------------------------------------------------------------


def _env(compose: dict[str, Any], service: str) -> dict[str, Any]:
    env: dict[str, Any] = compose["services"][service]["environment"]
    return env


def _bad_env_name(c: dict[str, Any]) -> None:
    _env(c, "se-rw")["ARTSTORE_SE_ELEMENTID"] = "se-rw"


def _other_service_prefix(c: dict[str, Any]) -> None:
    _env(c, "ingester")["ARTSTORE_ADMIN_PORT"] = "8020"


def _shared_element_id(c: dict[str, Any]) -> None:
    _env(c, "se-rw")["ARTSTORE_SE_ELEMENT_ID"] = "se-edit"


def _shared_data_volume(c: dict[str, Any]) -> None:
    c["services"]["se-rw"]["volumes"] = ["se-edit-data:/var/lib/artstore/data"]


def _wrong_port_in_url(c: dict[str, Any]) -> None:
    _env(c, "se-edit")["ARTSTORE_SE_JWKS_URL"] = "http://admin:8001/.well-known/jwks.json"


def _port_not_design(c: dict[str, Any]) -> None:
    _env(c, "query")["ARTSTORE_QUERY_PORT"] = "8040"


def _element_url_to_nowhere(c: dict[str, Any]) -> None:
    c["services"]["init"]["command"][3] = "http://se-ro:8012"


def _no_healthcheck(c: dict[str, Any]) -> None:
    del c["services"]["admin"]["healthcheck"]


def _depends_on_unknown(c: dict[str, Any]) -> None:
    c["services"]["ingester"]["depends_on"]["redis-cache"] = {"condition": "service_healthy"}


def _missing_dockerfile(c: dict[str, Any]) -> None:
    c["services"]["query"]["build"]["dockerfile"] = "query-module/Containerfile"


def _floating_image(c: dict[str, Any]) -> None:
    c["services"]["redis"]["image"] = "redis:latest"


def _secret_in_file(c: dict[str, Any]) -> None:
    _env(c, "admin")["ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def _other_namespace(c: dict[str, Any]) -> None:
    _env(c, "query")["ARTSTORE_QUERY_REDIS_NAMESPACE"] = "other"


def _query_reads_another_schema(c: dict[str, Any]) -> None:
    _env(c, "query")["ARTSTORE_QUERY_DATABASE_SCHEMA"] = "catalog"


def _required_setting_missing(c: dict[str, Any]) -> None:
    del _env(c, "se-edit")["ARTSTORE_SE_DATABASE_URL"]


def _account_file_not_loaded(c: dict[str, Any]) -> None:
    c["services"]["ingester"]["command"] = None


def _listens_on_loopback(c: dict[str, Any]) -> None:
    _env(c, "ingester")["ARTSTORE_INGESTER_HOST"] = "127.0.0.1"


MUTATIONS: list[tuple[Callable[[dict[str, Any]], None], str]] = [
    (_bad_env_name, "ARTSTORE_SE_ELEMENTID is not a setting of StorageSettings"),
    (_other_service_prefix, "ARTSTORE_ADMIN_PORT is not a setting of IngesterSettings"),
    (_shared_element_id, "storage elements share an id"),
    (_shared_data_volume, "storage elements share a data volume"),
    (_wrong_port_in_url, "reaches admin at port 8001, but it listens on 8000"),
    (_port_not_design, "artstore_query runs on ports [8040], DESIGN says [8030]"),
    (_element_url_to_nowhere, "http://se-ro:8012 names no service"),
    (_no_healthcheck, "admin: no healthcheck"),
    (_depends_on_unknown, "depends on redis-cache, which is not a service"),
    (_missing_dockerfile, "query-module/Containerfile does not exist"),
    (_floating_image, "image redis:latest is not a pinned version"),
    (_secret_in_file, "the secret ARTSTORE_ADMIN_KEY_ENCRYPTION_KEY is written in the file"),
    (_other_namespace, "different Redis namespaces"),
    (_query_reads_another_schema, "query: its database_schema is not the admin's"),
    (_required_setting_missing, "se-edit: the required setting database_url is not given"),
    (_account_file_not_loaded, "ingester: the required setting client_id is not given"),
    (_listens_on_loopback, "ingester: listens on 127.0.0.1"),
]


@pytest.mark.parametrize(("mutate", "expected"), MUTATIONS, ids=[m.__name__.strip("_") for m, _ in MUTATIONS])
def test_a_broken_compose_file_is_caught(
    compose: dict[str, Any], mutate: Callable[..., None], expected: str
) -> None:
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = [problem for check in COMPOSE_CHECKS.values() for problem in check(broken)]
    assert any(expected in problem for problem in problems), problems


def test_an_undocumented_or_optional_looking_variable_is_caught() -> None:
    text = checks.COMPOSE.read_text()
    undocumented = text.replace("${LOG_LEVEL:-INFO}", "${LOGLEVEL:-INFO}", 1)
    assert any("${LOGLEVEL} is used but not documented" in p for p in checks.check_variables(undocumented))
    weakened = text.replace("${ADMIN_KEY_ENCRYPTION_KEY:?", "${ADMIN_KEY_ENCRYPTION_KEY:-", 1)
    assert any("ADMIN_KEY_ENCRYPTION_KEY" in p for p in checks.check_variables(weakened))


def _dockerfile_problems(path: str, mutate: Callable[[checks.Dockerfile], None]) -> list[str]:
    dockerfile = checks.parse_dockerfile(checks.ROOT / path)
    mutate(dockerfile)
    return checks.check_dockerfile(dockerfile)


def _replace(dockerfile: checks.Dockerfile, keyword: str, arguments: str | None) -> None:
    final = dockerfile.final
    index = max(i for i, instruction in enumerate(final) if instruction.keyword == keyword)
    if arguments is None:
        del final[index]
    else:
        final[index] = checks.Instruction(keyword, arguments)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: _replace(d, "USER", "root"), "does not switch to a non-root USER"),
        (lambda d: _replace(d, "USER", None), "does not switch to a non-root USER"),
        (lambda d: _replace(d, "HEALTHCHECK", None), "no HEALTHCHECK"),
        (lambda d: _replace(d, "CMD", '["python", "-m", "artstore_ingest"]'), "is not `python -m <a package"),
        (
            lambda d: _replace(d, "CMD", '["uvicorn", "artstore_ingester.app:app"]'),
            "is not `python -m <a package",
        ),
        (lambda d: _replace(d, "EXPOSE", "8000"), "EXPOSE [8000] is not the port DESIGN gives"),
        (
            lambda d: d.stages[0].append(checks.Instruction("COPY", "ingester ./ingester")),
            "ingester does not exist",
        ),
        (
            lambda d: d.stages[0].append(checks.Instruction("COPY", "tests ./tests")),
            "excluded by .dockerignore",
        ),
    ],
    ids=[
        "root",
        "no-user",
        "no-healthcheck",
        "unknown-package",
        "not-python-m",
        "port",
        "copy-missing",
        "copy-ignored",
    ],
)
def test_a_broken_dockerfile_is_caught(mutate: Callable[[checks.Dockerfile], None], expected: str) -> None:
    problems = _dockerfile_problems("ingester-module/Dockerfile", mutate)
    assert any(expected in problem for problem in problems), problems


def test_the_init_job_writes_the_variables_the_services_read() -> None:
    """The accounts file names are the ingester's and query module's own settings."""
    from artstore_ingester.settings import IngesterSettings
    from artstore_query.settings import QuerySettings

    init = checks.load_init_script()
    prefixes = {kind.key: kind.env_prefix for kind in init.SERVICES}
    assert prefixes == {
        "ingester": IngesterSettings.model_config["env_prefix"],
        "query": QuerySettings.model_config["env_prefix"],
    }
    for settings in (IngesterSettings, QuerySettings):
        variables = setting_variables(settings)
        prefix = settings.model_config["env_prefix"]
        assert variables[f"{prefix}CLIENT_ID"] == "client_id"
        assert variables[f"{prefix}CLIENT_SECRET"] == "client_secret"
