"""What the client commands print: one JSON document, plain lines, or a table; data on stdout only."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB")
_PIPE_WIDTH = 10_000


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if value < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f} {unit}"


def print_json(document: Any) -> None:
    """The whole answer as one JSON document: scripts parse stdout without guessing where it ends."""
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def print_line(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def print_fields(fields: Iterable[tuple[str, Any]]) -> None:
    """`name: value` lines, the names aligned; empty values left out."""
    shown = [(name, _plain(value)) for name, value in fields if value not in (None, "", (), [], {})]
    width = max((len(name) for name, _ in shown), default=0)
    for name, value in shown:
        print_line(f"{name + ':':<{width + 1}} {value}")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    # rich is imported here so that commands printing no table do not pay for loading it.
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for row in rows:
        table.add_row(*(_plain(cell) for cell in row))
    if sys.stdout.isatty():
        Console(highlight=False).print(table)
        return
    # A pipe gets every cell whole (a truncated id would be useless to the next command) and no padding
    # at the ends of lines.
    console = Console(highlight=False, width=_PIPE_WIDTH)
    with console.capture() as captured:
        console.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def _plain(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_plain(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)
