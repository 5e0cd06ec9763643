"""The mode table of DESIGN section 3, the persisted mode, and what a configured mode may change."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from artstore_common.errors import InvalidTransition, ModeNotAllowed
from artstore_storage.storage._durable import replace_durably


class Operation(StrEnum):
    CREATE = "create"
    READ_CONTENT = "read_content"
    READ_METADATA = "read_metadata"
    UPDATE_METADATA = "update_metadata"
    DELETE = "delete"


ALLOWED: dict[str, frozenset[Operation]] = {
    "edit": frozenset(Operation),
    "rw": frozenset(Operation) - {Operation.DELETE},
    "ro": frozenset({Operation.READ_CONTENT, Operation.READ_METADATA}),
    "ar": frozenset({Operation.READ_CONTENT, Operation.READ_METADATA}),
}
API_TRANSITIONS: dict[str, frozenset[str]] = {
    "edit": frozenset(),
    "rw": frozenset({"ro"}),
    "ro": frozenset({"ar"}),
    "ar": frozenset(),
}
_LIFECYCLE = ["edit", "rw", "ro", "ar"]


class ModeConflict(Exception):
    """The configured mode cannot be reconciled with the persisted one; the element refuses to start."""


def check_allowed(mode: str, operation: Operation) -> None:
    if operation not in ALLOWED[mode]:
        allowed = ", ".join(sorted(ALLOWED[mode])) or "nothing"
        raise ModeNotAllowed(
            f"'{operation}' is not allowed while the element is in mode '{mode}' (allowed: {allowed})",
            extra={"mode": mode, "operation": str(operation)},
        )


def check_transition(current: str, target: str) -> None:
    if target not in _LIFECYCLE:
        raise InvalidTransition(f"'{target}' is not a mode; modes are edit, rw, ro, ar")
    if target not in API_TRANSITIONS[current]:
        if current == "ar":
            hint = "leaving 'ar' needs manual intervention (configuration with allow_leave_archive)"
        elif "edit" in (current, target):
            hint = "'edit' is set only by configuration and a restart"
        else:
            allowed = ", ".join(sorted(API_TRANSITIONS[current])) or "none"
            hint = f"from '{current}' the API allows: {allowed}"
        raise InvalidTransition(f"cannot change mode from '{current}' to '{target}': {hint}")


def resolve_start_mode(persisted: str | None, configured: str, allow_leave_archive: bool) -> str:
    """The mode to serve in at start, given mode.json and the configuration."""
    if persisted is None or persisted == configured:
        return configured
    if persisted == "edit" and configured == "rw":
        return "rw"  # the one configuration-only step forward
    if persisted == "ar":
        if allow_leave_archive:
            return configured
        return "ar"  # configuration that lags behind an archived element changes nothing
    if configured != "edit" and _LIFECYCLE.index(configured) < _LIFECYCLE.index(persisted):
        return persisted  # the API moved the element on; the configuration merely lags behind
    if configured == "edit":
        raise ModeConflict(
            f"mode.json says '{persisted}' but the configuration asks for 'edit': an element that left "
            "'edit' cannot return to it. Use a new element (new data directory) for editable files."
        )
    raise ModeConflict(
        f"mode.json says '{persisted}' but the configuration asks for '{configured}': move the element "
        f"forward with POST /api/v1/mode (which also seals it), or set the configured mode to '{persisted}'."
    )


class ModeStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        if not self.path.exists():
            return None
        mode = json.loads(self.path.read_text())["mode"]
        if mode not in ALLOWED:
            raise ModeConflict(f"{self.path} holds an unknown mode '{mode}'")
        return str(mode)

    def save(self, mode: str, reason: str) -> None:
        document = {"mode": mode, "changed_at": datetime.now(UTC).isoformat(), "reason": reason}
        replace_durably(self.path.with_suffix(".json.tmp"), self.path, json.dumps(document).encode())
