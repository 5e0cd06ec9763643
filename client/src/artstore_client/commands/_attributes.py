"""Options that give a file's attributes (tags, metadata), shared by upload, update and search."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from artstore_client.commands._runtime import usage_error

Tags = Annotated[list[str] | None, typer.Option("--tag", metavar="TAG", help="repeat for several tags")]
Metadata = Annotated[
    list[str] | None,
    typer.Option(
        "--metadata",
        metavar="KEY=VALUE",
        help="a string value, or KEY:=JSON for a number, true/false or null; repeat for several keys",
    ),
]


def parse_metadata(pairs: list[str] | None) -> dict[str, Any] | None:
    if not pairs:
        return None
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, typed, raw = _split_pair(pair)
        if typed:
            try:
                parsed[key] = json.loads(raw)
            except ValueError:
                usage_error(f"--metadata {pair!r}: {raw!r} is not JSON (use KEY=VALUE for a string)")
        else:
            parsed[key] = raw
    return parsed


def _split_pair(pair: str) -> tuple[str, bool, str]:
    key, separator, value = pair.partition("=")
    if not separator or not key or key == ":":
        usage_error(f"--metadata {pair!r}: give KEY=VALUE or KEY:=JSON")
    if key.endswith(":"):
        return key[:-1], True, value
    return key, False, value
