"""Roles and the permissions they grant (DESIGN section 2). The token carries both."""

from __future__ import annotations

INTERNAL = "internal"

# In this order in every token, so `scope` reads the same for every account of a role.
ALL_PERMISSIONS: tuple[str, ...] = (
    "files:read",
    "files:write",
    "files:delete",
    "storage:read",
    "storage:write",
    "accounts:read",
    "accounts:write",
    "audit:read",
    INTERNAL,
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "ADMIN": frozenset(p for p in ALL_PERMISSIONS if p != INTERNAL),
    "USER": frozenset({"files:read", "files:write", "files:delete", "storage:read"}),
    "AUDITOR": frozenset({"audit:read", "files:read", "storage:read"}),
    "READONLY": frozenset({"files:read", "storage:read"}),
}
ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)


def permissions_for(role: str, *, is_system: bool) -> list[str]:
    """The permissions of an account; an unknown role grants nothing, not even `internal`."""
    granted = ROLE_PERMISSIONS.get(role)
    if granted is None:
        return []
    if is_system:
        granted = granted | {INTERNAL}
    return [p for p in ALL_PERMISSIONS if p in granted]
