"""The configuration reference, generated from the settings classes.

python -m tools.config_reference            # print it (Markdown)
python -m tools.config_reference --write    # rewrite docs/configuration.md with it
"""

from __future__ import annotations

import argparse
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from artstore_admin.settings import AdminSettings
from artstore_client.settings import ClientSettings, DevSettings
from artstore_ingester.settings import IngesterSettings
from artstore_query.settings import QuerySettings
from artstore_storage.settings import StorageSettings

OUTPUT = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
REGENERATE = "python -m tools.config_reference --write"
SECRET = "(secret)"


@dataclass(frozen=True)
class Section:
    title: str
    package: str  # the import package whose settings these are
    settings: type[BaseSettings]
    intro: str
    # Fields the service cannot do without although they have a default (None): field name -> when.
    # The settings classes leave them optional so that a missing one is reported in words at start.
    required: Mapping[str, str] = field(default_factory=dict)


SECTIONS: tuple[Section, ...] = (
    Section(
        "Admin module",
        "artstore_admin",
        AdminSettings,
        "Identity (accounts, signing keys, tokens), the storage-element registry, the catalog, sagas and the "
        "audit log (`python -m artstore_admin`).",
        {
            "database_url": "yes",
            "key_encryption_key": "yes",
            "bootstrap_client_secret": "first start",
        },
    ),
    Section(
        "Storage element",
        "artstore_storage",
        StorageSettings,
        "One element: its data directory and its own index tables (`python -m artstore_storage`). Several "
        "elements on one database need distinct `ELEMENT_ID`s, ports and data directories.",
        {"database_url": "yes", "jwks_url": "yes"},
    ),
    Section(
        "Ingester",
        "artstore_ingester",
        IngesterSettings,
        "Streams uploads to the elements and runs the upload and delete sagas, acting as a system account of "
        "its own (`python -m artstore_ingester`). Stateless: run as many as needed.",
        {"admin_url": "yes", "client_id": "yes", "client_secret": "yes"},
    ),
    Section(
        "Query module",
        "artstore_query",
        QuerySettings,
        "Search, metadata through the cache levels, and downloads, reading the admin's catalog in place "
        "(`python -m artstore_query`). Stateless: run as many as needed.",
        {"database_url": "yes", "admin_url": "yes", "client_id": "yes", "client_secret": "yes"},
    ),
    Section(
        "Client (`artstore` command line and SDK)",
        "artstore_client",
        ClientSettings,
        "Where the cluster is and which account the client uses. A value left unset is taken from the "
        "credentials file `artstore dev up` writes.",
        {"admin_url": "without dev up", "client_id": "without dev up", "client_secret": "without dev up"},
    ),
    Section(
        "`artstore dev up`",
        "artstore_client",
        DevSettings,
        "The servers the local cluster uses instead of its embedded PostgreSQL and Redis. dev up sets every "
        "service's own variables itself.",
    ),
)


@dataclass(frozen=True)
class Variable:
    names: tuple[str, ...]  # the environment variables that set it (the first is the canonical one)
    field_name: str
    type: str
    default: str
    required: str
    description: str


def _prefix(settings: type[BaseSettings]) -> str:
    return str(settings.model_config.get("env_prefix", ""))


def env_names(settings: type[BaseSettings], name: str, info: FieldInfo) -> tuple[str, ...]:
    """The variables pydantic-settings reads for a field, upper-cased: an alias replaces prefix + name."""
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        return (alias.upper(),)
    if alias is not None and hasattr(alias, "choices"):
        return tuple(choice.upper() for choice in alias.choices if isinstance(choice, str))
    return ((_prefix(settings) + name).upper(),)


def setting_variables(settings: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable of a settings class (upper case) -> its field name."""
    return {
        variable: name
        for name, info in settings.model_fields.items()
        for variable in env_names(settings, name, info)
    }


def is_secret(info: FieldInfo) -> bool:
    return _contains(info.annotation, (SecretStr, SecretBytes))


def _contains(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if annotation in kinds:
        return True
    return any(_contains(argument, kinds) for argument in get_args(annotation))


_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Path: "path",
    SecretStr: "string",
    SecretBytes: "bytes",
}


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        return " or ".join(_type_name(arg) for arg in get_args(annotation) if arg is not type(None))
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in get_args(annotation))
    return _TYPE_NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _constraints(info: FieldInfo) -> list[str]:
    bounds = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    found = []
    for item in info.metadata:
        for attribute, symbol in bounds.items():
            value = getattr(item, attribute, None)
            if value is not None:
                found.append(f"{symbol} {_plain(value)}")
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            found.append(f"matching `{pattern}`")
    return found


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(info: FieldInfo) -> str:
    if is_secret(info):
        return SECRET
    if info.is_required():
        return "-"
    if info.default_factory is not None:
        return "computed"
    value = info.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    return f"`{_plain(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def variables(section: Section) -> list[Variable]:
    rows = []
    for name, info in section.settings.model_fields.items():
        kind = _type_name(info.annotation)
        if is_secret(info):
            kind += ", secret"
        constraints = _constraints(info)
        if constraints:
            kind += f" ({', '.join(constraints)})"
        required = "yes" if info.is_required() else section.required.get(name, "")
        rows.append(
            Variable(
                names=env_names(section.settings, name, info),
                field_name=name,
                type=kind,
                default=_default(info),
                required=required,
                description=info.description or "",
            )
        )
    return rows


def render_section(section: Section) -> str:
    lines = [
        f"## {section.title}",
        "",
        f"Prefix `{_prefix(section.settings)}`, class `{section.settings.__module__}.{section.settings.__name__}`. "
        + section.intro,
        "",
        "| Variable | Type | Default | Required | Description |",
        "|---|---|---|---|---|",
    ]
    for row in variables(section):
        names = "<br>".join(f"`{name}`" for name in row.names)
        cells = (names, _cell(row.type), _cell(row.default), _cell(row.required), _cell(row.description))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render(sections: Sequence[Section] = SECTIONS) -> str:
    header = f"""# Configuration reference

<!-- Generated from the settings classes by `{REGENERATE}`; do not edit by hand. -->

Every ArtStore service reads its settings from environment variables with its own prefix, validated at
start (a bad value stops the service with a message naming it). Names are case-insensitive. Secrets are
never logged, and their defaults show here only as {SECRET}.

**Required**: `yes` means the service does not work without it although it has no value by default (it
stops at start, or refuses requests, with a message naming the variable); `first start` means it is needed
until the admin's database holds the bootstrap account; `without dev up` means the client takes it from
`artstore dev up`'s credentials file when the variable is unset. `artstore dev up` sets every service's
variables itself; `docker-compose.yml` shows a deployment that sets them explicitly.
"""
    return header + "".join("\n" + render_section(section) for section in sections)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.config_reference", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--write", action="store_true", help=f"write it to {OUTPUT} instead of printing it")
    arguments = parser.parse_args(argv)
    text = render()
    if arguments.write:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(text)
        print(f"wrote {OUTPUT}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
