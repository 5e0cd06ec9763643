"""`artstore se`, `accounts` and `audit`: the admin module's registry, service accounts and audit log."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from artstore_client.commands import _output
from artstore_client.commands._runtime import DEFAULT_DATA_DIR, DataDir, JsonOutput, connected, fail

if TYPE_CHECKING:
    from artstore_client import Client
    from artstore_client._models import Account

se_app = typer.Typer(help="Storage elements: list them, change their mode.", no_args_is_help=True)
accounts_app = typer.Typer(
    help="Service accounts: list, create, delete, rotate secrets.", no_args_is_help=True
)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)


class Mode(StrEnum):
    edit = "edit"
    rw = "rw"
    ro = "ro"
    ar = "ar"


class Role(StrEnum):
    ADMIN = "ADMIN"
    USER = "USER"
    AUDITOR = "AUDITOR"
    READONLY = "READONLY"


@se_app.command("list")
def se_list(json_output: JsonOutput = False, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """The registered storage elements with their mode, status and usage."""
    with connected(data_dir) as client:
        elements = client.storage_elements()
    if json_output:
        _output.print_json([element.raw for element in elements])
        return
    rows = (
        (
            element.id,
            element.mode,
            element.status,
            element.url,
            _output.human_size(element.raw.get("used_bytes")),
            _output.human_size(element.raw.get("capacity_bytes")),
            element.raw.get("file_count"),
        )
        for element in elements
    )
    _output.print_table(None, ("ID", "MODE", "STATUS", "URL", "USED", "CAPACITY", "FILES"), rows)


@se_app.command("mode")
def se_mode(
    element_id: Annotated[str, typer.Argument(help="the storage element's id (see `artstore se list`)")],
    target_mode: Annotated[
        Mode, typer.Argument(help="rw -> ro, or ro -> ar (which seals it); edit is set by configuration only")
    ],
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Move a storage element to its next lifecycle mode (a saga run by the admin)."""
    with connected(data_dir) as client:
        changed = client.set_mode(element_id, target_mode.value)
    if json_output:
        _output.print_json(changed)
        return
    before, after = changed.get("previous_mode", "?"), changed.get("mode", target_mode.value)
    _output.print_line(f"{element_id}: {before} -> {after}")


@accounts_app.command("list")
def accounts_list(
    status: Annotated[
        str | None, typer.Option(help="active, suspended or deleted [default: active and suspended]")
    ] = None,
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The service accounts (never their secrets)."""
    with connected(data_dir) as client:
        accounts = client.accounts(status)
    if json_output:
        _output.print_json([account.raw for account in accounts])
        return
    rows = (
        (account.id, account.name, account.client_id, account.role, account.status, account.is_system)
        for account in accounts
    )
    _output.print_table(None, ("ID", "NAME", "CLIENT ID", "ROLE", "STATUS", "SYSTEM"), rows)


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Argument(help="3-64 letters, digits, '.', '_' or '-'; also the client id")],
    role: Annotated[Role, typer.Option(help="what the account may do", case_sensitive=False)],
    description: Annotated[str | None, typer.Option(help="free text")] = None,
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create a service account and print its client id and secret (shown this once only)."""
    with connected(data_dir) as client:
        account, secret = client.create_account(name, role.value, description=description)
    _print_secret(account, secret, json_output, f"created account {account.name} ({account.id})")


@accounts_app.command("delete")
def accounts_delete(
    account: Annotated[str, typer.Argument(metavar="ACCOUNT", help="the account's id, name or client id")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Delete a service account: its tokens are refused from then on."""
    with connected(data_dir) as client:
        found = _resolve(client, account)
        client.delete_account(found)
    _output.print_line(f"deleted account {account}")


@accounts_app.command("rotate-secret")
def accounts_rotate_secret(
    account: Annotated[str, typer.Argument(metavar="ACCOUNT", help="the account's id, name or client id")],
    json_output: JsonOutput = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Give an account a new secret (shown this once); the old one keeps working for a short overlap."""
    with connected(data_dir) as client:
        rotated, secret = client.rotate_secret(_resolve(client, account))
    headline = f"new secret for {rotated.name} ({rotated.id}); the previous one works for a short overlap"
    _print_secret(rotated, secret, json_output, headline)


def _resolve(client: Client, reference: str) -> str:
    """An account's id from its id, name or client id: people remember names, the API wants ids."""
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        pass
    matches = [a.id for a in client.accounts() if reference in (a.name, a.client_id)]
    if not matches:
        fail(f"no active or suspended account has the name or client id {reference!r}")
    if len(set(matches)) > 1:
        fail(f"several accounts are called {reference!r}: give the id (see `artstore accounts list`)")
    return matches[0]


def _print_secret(account: Account, secret: str, json_output: bool, headline: str) -> None:
    if json_output:
        _output.print_json({**account.raw, "client_secret": secret})
        return
    _output.print_line(headline)
    _output.print_fields(
        [("client_id", account.client_id), ("client_secret", secret), ("role", account.role)]
    )
    _output.print_line("Keep the secret now: it is not shown again.")


@audit_app.command("verify")
def audit_verify(json_output: JsonOutput = False, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Check the audit log's hash chain and signatures; exit status 1 names the first broken record."""
    with connected(data_dir) as client:
        verification = client.audit_verify()
    if json_output:
        document = {
            "valid": verification.valid,
            "checked": verification.checked,
            "first_broken": verification.first_broken,
        }
        _output.print_json(document)
        if not verification.valid:
            raise typer.Exit(1)
        return
    if verification.valid:
        _output.print_line(f"audit log intact: {verification.checked} records checked")
        return
    broken = verification.first_broken or {}
    fail(
        f"audit log broken at record {broken.get('id', '?')}: {broken.get('reason', 'no reason given')}"
        f" ({verification.checked} records checked)"
    )
