"""Checks of docker-compose.yml, .env.example, .dockerignore and the Dockerfiles. Each returns the problems it
finds as sentences (an empty list when all is well), so that a test can also feed it a broken copy."""

from __future__ import annotations

import functools
import glob
import importlib.util
import json
import re
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic_settings import BaseSettings

from tools.config_reference import SECTIONS, Section, is_secret, setting_variables

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
INIT_SCRIPT = ROOT / "deploy" / "compose_init.py"

# DESIGN section 1: the port of each service (the elements take 8010-8019, one each).
DESIGN_PORTS = {
    "artstore_admin": [8000],
    "artstore_storage": [8010, 8011],
    "artstore_ingester": [8020],
    "artstore_query": [8030],
}
# The infrastructure images and the ports they listen on.
IMAGE_PORTS = {"postgres": 5432, "redis": 6379}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[?\-+])([^}]*))?\}")
_URL = re.compile(r"\b([a-z][a-z0-9+]*)://(?:[^@/\s]*@)?([A-Za-z0-9_.\-]+):(\d+)")


def load_compose(text: str | None = None) -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text() if text is None else text)
    assert isinstance(loaded, dict)
    return loaded


@functools.cache
def load_init_script() -> ModuleType:
    """deploy/compose_init.py as a module (it is a script, outside every package)."""
    spec = importlib.util.spec_from_file_location("artstore_compose_init", INIT_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def blank_variables(value: str) -> str:
    """A compose value with each ${VAR...} replaced by a word, to read the URL around it."""
    return _VARIABLE.sub("x", value)


# ---- Dockerfiles -------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Dockerfile:
    path: Path
    context: Path
    stages: list[list[Instruction]] = field(default_factory=list)

    @property
    def final(self) -> list[Instruction]:
        return self.stages[-1]

    def last(self, keyword: str) -> Instruction | None:
        found = [i for i in self.final if i.keyword == keyword]
        return found[-1] if found else None

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for instruction in self.final:
            if instruction.keyword == "ENV":
                for word in shlex.split(instruction.arguments):
                    name, _, value = word.partition("=")
                    values[name] = value
        return values

    def command(self) -> list[str]:
        cmd = self.last("CMD")
        return json.loads(cmd.arguments) if cmd else []


def parse_dockerfile(path: Path, context: Path = ROOT) -> Dockerfile:
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    parsed = Dockerfile(path, context)
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parsed.stages.append([])
        assert parsed.stages, f"{path}: an instruction before FROM"
        parsed.stages[-1].append(Instruction(keyword, " ".join(arguments.split())))
    return parsed


def ignore_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _pattern(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression over paths relative to the context."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def ignored(relative: str, patterns: Iterable[str]) -> bool:
    """Whether .dockerignore keeps `relative` (or a folder above it) out of the build context; the last
    matching pattern decides, a `!` one lets it back in."""
    parts = PurePosixPath(relative).parts
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for pattern in patterns:
        regex = _pattern(pattern.lstrip("!").strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not pattern.startswith("!")
    return excluded


def _main_packages() -> dict[str, Path]:
    return {
        Path(p).parent.name: Path(p).parent for p in glob.glob(str(ROOT / "*" / "src" / "*" / "__main__.py"))
    }


def check_dockerfile(dockerfile: Dockerfile, *, one_shot: bool = False) -> list[str]:
    problems: list[str] = []
    name = dockerfile.path.relative_to(ROOT).as_posix()
    for stage in dockerfile.stages:
        image = stage[0].arguments.split()[0]
        if image != "python:3.11-slim":
            problems.append(f"{name}: builds FROM {image}, not python:3.11-slim")
    user = dockerfile.last("USER")
    if user is None or user.arguments.split(":")[0] in {"root", "0"}:
        problems.append(f"{name}: the image does not switch to a non-root USER")
    health = dockerfile.last("HEALTHCHECK")
    if not one_shot and (health is None or health.arguments.upper().startswith("NONE")):
        problems.append(f"{name}: no HEALTHCHECK")
    patterns = ignore_patterns()
    for stage in dockerfile.stages:
        for instruction in stage:
            if instruction.keyword not in {"COPY", "ADD"}:
                continue
            words = shlex.split(instruction.arguments)
            if any(word.startswith("--from") for word in words):
                continue
            for source in [w for w in words if not w.startswith("--")][:-1]:
                if not (dockerfile.context / source).exists():
                    problems.append(f"{name}: COPY source {source} does not exist")
                elif ignored(source, patterns):
                    problems.append(f"{name}: COPY source {source} is excluded by .dockerignore")
    command = dockerfile.command()
    packages = _main_packages()
    if one_shot:
        scripts = [word for word in command if word.endswith(".py")]
        copied = " ".join(i.arguments for i in dockerfile.final if i.keyword == "COPY")
        if not scripts or scripts[0] not in copied:
            problems.append(f"{name}: CMD {command} does not run a script the image copies in")
        return problems
    if len(command) != 3 or command[:2] != ["python", "-m"] or command[2] not in packages:
        problems.append(f"{name}: CMD {command} is not `python -m <a package with __main__.py>`")
        return problems
    package = command[2]
    folder = packages[package].parents[1].name
    installs = " ".join(i.arguments for s in dockerfile.stages for i in s if i.keyword == "RUN")
    if f"-c constraints.txt ./common ./{folder}" not in installs:
        problems.append(f"{name}: does not `pip install -c constraints.txt ./common ./{folder}`")
    exposed = {
        int(p.split("/")[0]) for i in dockerfile.final if i.keyword == "EXPOSE" for p in i.arguments.split()
    }
    if not exposed or not exposed <= set(DESIGN_PORTS.get(package, [])):
        problems.append(f"{name}: EXPOSE {sorted(exposed)} is not the port DESIGN gives {package}")
    return problems


# ---- the compose file ---------------------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    dockerfile: Dockerfile | None
    package: str | None  # what it runs: a python -m package, the init script's (artstore_client), or None
    section: Section | None  # the settings of that package

    @property
    def settings(self) -> type[BaseSettings] | None:
        return self.section.settings if self.section else None

    def environment(self) -> dict[str, str]:
        """Its variables: the image's ENV, then compose's environment over it."""
        values = dict(self.dockerfile.env()) if self.dockerfile else {}
        given = self.spec.get("environment") or {}
        if isinstance(given, list):
            given = dict(item.partition("=")[::2] for item in given)
        values.update({str(k): str(v) for k, v in given.items()})
        return values

    def command_text(self) -> str:
        command = self.spec.get("command")
        if command is None and self.dockerfile is not None:
            command = self.dockerfile.command()
        return " ".join(command) if isinstance(command, list) else str(command or "")

    def setting(self, field_name: str) -> str | None:
        """The value it runs with: its environment's, else the class default (None when unset)."""
        assert self.settings is not None
        variables = [v for v, f in setting_variables(self.settings).items() if f == field_name]
        env = {k.upper(): v for k, v in self.environment().items()}
        for variable in variables:
            if variable in env:
                return env[variable]
        default = self.settings.model_fields[field_name].default
        return None if default is None else str(default)

    def port(self) -> int | None:
        value = self.setting("port") if self.settings and "port" in self.settings.model_fields else None
        return int(value) if value else None

    def one_shot(self) -> bool:
        return str(self.spec.get("restart", "no")) == "no" and "healthcheck" not in self.spec


def services(compose: dict[str, Any]) -> dict[str, Service]:
    found = {}
    for name, spec in (compose.get("services") or {}).items():
        dockerfile = None
        build = spec.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            path = context / (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            )
            if path.is_file():
                dockerfile = parse_dockerfile(path, context)
        service = Service(name, spec, dockerfile, None, None)
        text = service.command_text()
        module = re.search(r"python -m ([A-Za-z_][A-Za-z0-9_]*)", text)
        if module:
            service.package = module.group(1)
        elif INIT_SCRIPT.name in text:
            # The init script reads the client's settings (ClientSettings()).
            assert "ClientSettings()" in INIT_SCRIPT.read_text()
            service.package = "artstore_client"
        service.section = next((s for s in SECTIONS if s.package == service.package), None)
        found[name] = service
    return found


def check_builds(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, spec in compose["services"].items():
        build, image = spec.get("build"), spec.get("image")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = context / (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile"
            )
            if not context.is_dir():
                problems.append(f"{name}: build context {context} does not exist")
            elif not dockerfile.is_file():
                problems.append(f"{name}: Dockerfile {dockerfile} does not exist")
        elif image is not None:
            repository, _, tag = str(image).partition(":")
            if repository not in IMAGE_PORTS or not re.fullmatch(r"\d+(\.\d+)+(-[a-z0-9.]+)?", tag):
                problems.append(f"{name}: image {image} is not a pinned version of {sorted(IMAGE_PORTS)}")
        else:
            problems.append(f"{name}: neither build nor image")
    return problems


def check_dockerfiles(compose: dict[str, Any]) -> list[str]:
    problems = []
    for service in services(compose).values():
        if service.dockerfile is not None:
            problems += check_dockerfile(service.dockerfile, one_shot=service.one_shot())
    return problems


def check_healthchecks(compose: dict[str, Any]) -> list[str]:
    problems = []
    table = services(compose)
    waited_on = {
        target: condition
        for spec in compose["services"].values()
        for target, condition in _depends(spec).items()
    }
    for name, service in table.items():
        if "healthcheck" in service.spec:
            test = service.spec["healthcheck"].get("test")
            if not test or test == ["NONE"]:
                problems.append(f"{name}: its healthcheck has no test")
        elif not (service.one_shot() and waited_on.get(name) == "service_completed_successfully"):
            problems.append(
                f"{name}: no healthcheck (only a one-shot job others wait to complete may go without)"
            )
    return problems


def _depends(spec: dict[str, Any]) -> dict[str, str]:
    depends = spec.get("depends_on") or {}
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {target: (value or {}).get("condition", "service_started") for target, value in depends.items()}


def check_depends_on(compose: dict[str, Any]) -> list[str]:
    problems = []
    table = compose["services"]
    for name, spec in table.items():
        for target, condition in _depends(spec).items():
            if target not in table:
                problems.append(f"{name}: depends on {target}, which is not a service")
            elif condition not in CONDITIONS:
                problems.append(f"{name}: depends on {target} with the unknown condition {condition}")
            elif condition == "service_healthy" and "healthcheck" not in table[target]:
                problems.append(f"{name}: waits for {target} to be healthy, but it has no healthcheck")
            elif condition == "service_completed_successfully" and str(table[target].get("restart")) != "no":
                problems.append(f"{name}: waits for {target} to complete, but it restarts")
    return problems


def check_settings_names(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        variables = [v for v in service.environment() if v.upper().startswith("ARTSTORE_")]
        if service.settings is None:
            problems += [f"{name}: sets {v}, but runs no ArtStore settings class" for v in variables]
            continue
        known = setting_variables(service.settings)
        for variable in variables:
            if variable.upper() not in known:
                problems.append(f"{name}: {variable} is not a setting of {service.settings.__name__}")
    return problems


def check_secrets_from_env(compose: dict[str, Any]) -> list[str]:
    """A secret setting's value comes from .env, unless it is a URL that carries no password."""
    problems = []
    for name, service in services(compose).items():
        if service.settings is None:
            continue
        known = setting_variables(service.settings)
        for variable, value in (service.spec.get("environment") or {}).items():
            field_name = known.get(str(variable).upper())
            if field_name is None or not is_secret(service.settings.model_fields[field_name]):
                continue
            if "${" in str(value):
                continue
            if "://" in str(value) and urlsplit(str(value)).password is None:
                continue
            problems.append(
                f"{name}: the secret {variable} is written in the file instead of coming from .env"
            )
    return problems


def check_ports_and_urls(compose: dict[str, Any]) -> list[str]:
    problems = []
    table = services(compose)
    by_package: dict[str, list[int]] = {}
    for name, service in table.items():
        if service.package not in DESIGN_PORTS:
            continue
        port = service.port()
        assert port is not None
        by_package.setdefault(service.package, []).append(port)
        if service.setting("host") != "0.0.0.0":
            problems.append(
                f"{name}: listens on {service.setting('host')}, unreachable from other containers"
            )
        published = [str(p) for p in service.spec.get("ports") or []]
        if published != [f"{port}:{port}"]:
            problems.append(f"{name}: publishes {published}, not its port {port} as {port}:{port}")
        test = " ".join(str(w) for w in (service.spec.get("healthcheck") or {}).get("test") or [])
        if f"127.0.0.1:{port}/health/ready" not in test:
            problems.append(f"{name}: its healthcheck does not ask /health/ready on its port {port}")
    for package, ports in DESIGN_PORTS.items():
        if sorted(by_package.get(package, [])) != ports:
            problems.append(
                f"{package} runs on ports {sorted(by_package.get(package, []))}, DESIGN says {ports}"
            )
    # Every URL one service gives another names a service of this file, at the port it listens on.
    for name, service in table.items():
        texts = [*service.environment().values(), service.command_text()]
        for text in texts:
            for scheme, host, port in _URL.findall(blank_variables(text)):
                target = table.get(host)
                if target is None:
                    problems.append(f"{name}: {scheme}://{host}:{port} names no service")
                    continue
                image = str(target.spec.get("image", "")).partition(":")[0]
                listens = target.port() if target.settings else IMAGE_PORTS.get(image)
                if listens != int(port):
                    problems.append(f"{name}: reaches {host} at port {port}, but it listens on {listens}")
        if service.package == "artstore_storage":
            public = service.setting("public_url") or ""
            if public.rstrip("/") != f"http://{name}:{service.port()}":
                problems.append(f"{name}: its PUBLIC_URL {public} is not http://{name}:{service.port()}")
    return problems


def check_storage_elements(compose: dict[str, Any]) -> list[str]:
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    elements = [s for s in services(compose).values() if s.package == "artstore_storage"]
    ids = [s.setting("element_id") for s in elements]
    if len(set(ids)) != len(ids):
        problems.append(f"storage elements share an id: {ids}")
    modes = sorted(str(s.setting("mode")) for s in elements)
    if modes != ["edit", "rw"]:
        problems.append(f"the storage elements' modes are {modes}, DESIGN says one edit and one rw")
    volumes = []
    for element in elements:
        data_dir = str(element.setting("data_dir"))
        mounted = [
            str(v).split(":")[0]
            for v in element.spec.get("volumes") or []
            if str(v).split(":")[1] == data_dir
        ]
        if len(mounted) != 1 or mounted[0] not in declared:
            problems.append(f"{element.name}: no named volume is mounted at its data directory {data_dir}")
        volumes += mounted
    if len(set(volumes)) != len(volumes):
        problems.append(f"storage elements share a data volume: {volumes}")
    return problems


def check_shared_settings(compose: dict[str, Any]) -> list[str]:
    """What the services must agree on: one Redis namespace, the catalog the query module reads, the
    bootstrap account the init job acts as."""
    problems = []
    table = services(compose)
    artstore = [s for s in table.values() if s.package in DESIGN_PORTS]
    namespaces = {s.name: s.setting("redis_namespace") for s in artstore}
    if len(set(namespaces.values())) != 1:
        problems.append(f"the services use different Redis namespaces: {namespaces}")
    admins = [s for s in table.values() if s.package == "artstore_admin"]
    for query in (s for s in table.values() if s.package == "artstore_query"):
        for admin in admins:
            for setting in ("database_url", "database_schema"):
                if query.setting(setting) != admin.setting(setting):
                    problems.append(
                        f"{query.name}: its {setting} is not the admin's (it reads the admin's catalog)"
                    )
    for init in (s for s in table.values() if s.package == "artstore_client"):
        for admin in admins:
            pairs = (("client_id", "bootstrap_client_id"), ("client_secret", "bootstrap_client_secret"))
            for mine, theirs in pairs:
                if init.setting(mine) != admin.setting(theirs):
                    problems.append(f"{init.name}: its {mine} is not the admin's {theirs}")
    return problems


def check_required_settings(compose: dict[str, Any]) -> list[str]:
    """Every setting a service cannot do without is given, by compose or by the init job's accounts file."""
    problems = []
    table = services(compose)
    init_module = load_init_script()
    for name, service in table.items():
        if service.section is None or service.package not in DESIGN_PORTS:
            continue
        for field_name, when in service.section.required.items():
            if when != "yes" or service.setting(field_name) is not None:
                continue
            if not _from_accounts_file(service, field_name, table, init_module):
                problems.append(f"{name}: the required setting {field_name} is not given")
    return problems


def _from_accounts_file(
    service: Service, field_name: str, table: dict[str, Service], init: ModuleType
) -> bool:
    """The init job writes the service's account to <accounts-dir>/<key>.env on a volume the service
    mounts, and the service's command loads that file."""
    assert service.settings is not None
    prefix = str(service.settings.model_config.get("env_prefix", ""))
    kinds = [k for k in init.SERVICES if k.env_prefix == prefix]
    if field_name not in {"client_id", "client_secret"} or len(kinds) != 1:
        return False
    for job in table.values():
        words = job.command_text().split()
        if job.package != "artstore_client" or "--accounts-dir" not in words:
            continue
        accounts_dir = words[words.index("--accounts-dir") + 1]
        job_volumes = {str(v).split(":")[1]: str(v).split(":")[0] for v in job.spec.get("volumes") or []}
        volume = job_volumes.get(accounts_dir)
        for mount in service.spec.get("volumes") or []:
            source, target = str(mount).split(":")[:2]
            path = f"{target}/{kinds[0].key}.env"
            if (
                source == volume
                and f". {path} " in service.command_text() + " "
                and "set -a" in service.command_text()
            ):
                return True
    return False


def env_example_variables() -> dict[str, bool]:
    """The variables .env.example documents -> whether it marks them required (listed uncommented)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.fullmatch(r"(#)?([A-Z_][A-Z0-9_]*)=.*", line.strip())
        if match:
            found[match.group(2)] = match.group(1) is None
    return found


def check_variables(compose_text: str) -> list[str]:
    problems = []
    documented = env_example_variables()
    uses: dict[str, set[str]] = {}
    for name, operator, _ in _VARIABLE.findall(compose_text):
        uses.setdefault(name, set()).add(operator)
    for name, operators in sorted(uses.items()):
        if name not in documented:
            problems.append(f"${{{name}}} is used but not documented in .env.example")
        elif documented[name] and operators != {":?"}:
            problems.append(
                f"${{{name}}} is required by .env.example but not always used as ${{{name}:?message}}"
            )
        elif not documented[name] and operators != {":-"}:
            problems.append(f"${{{name}}} is optional in .env.example but not always used with a :-default")
    for name in documented:
        if name not in uses:
            problems.append(f".env.example documents {name}, which docker-compose.yml does not use")
    return problems
