"""The `artstore` command line. Commands parse their options and hand over to a module that does the work."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from artstore_client.credentials import DEFAULT_DATA_DIR, CredentialsMissing, resolve_credentials
from artstore_client.dev.layout import QUERY_OFFSET
from artstore_client.settings import ClientSettings, DevSettings
from artstore_client.token import TokenRequestFailed, fetch_token

app = typer.Typer(
    help="ArtStore: client and local dev cluster.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
dev_app = typer.Typer(help="Run ArtStore on this machine for development.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")

DataDir = Annotated[
    Path, typer.Option("--data-dir", help="the dev cluster's data directory", show_default=True)
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"artstore: {message}", err=True)
    return typer.Exit(1)


@dev_app.command("up")
def dev_up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    base_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535 - QUERY_OFFSET,
            help="admin at N, storage elements at N+10 and N+11, ingester at N+20, query module at N+30",
        ),
    ] = 8000,
    json_output: Annotated[
        bool, typer.Option("--json", help="print one JSON line on stdout when ready; logs go to stderr")
    ] = False,
) -> None:
    """Run the cluster on this machine until Ctrl-C or SIGTERM.

    PostgreSQL and Redis are embedded unless ARTSTORE_DATABASE_URL / ARTSTORE_REDIS_URL are set; the admin
    module runs at the base port, two storage elements in modes edit and rw, registered with the admin.
    """
    # Imported here so that the client commands do not pay for loading the servers.
    from artstore_client.dev.cluster import DevOptions
    from artstore_client.dev.up import run_dev_up

    try:
        settings = DevSettings()
    except ValidationError as exc:
        raise _fail(f"invalid ARTSTORE_* settings:\n{exc}") from None
    status = run_dev_up(DevOptions(data_dir, base_port), settings, json_output=json_output)
    raise typer.Exit(status)


@app.command()
def token(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    scope: Annotated[str | None, typer.Option(help="space-separated permissions to ask for")] = None,
) -> None:
    """Print an access token for the configured account.

    The admin URL and the account come from ARTSTORE_ADMIN_URL, ARTSTORE_CLIENT_ID and
    ARTSTORE_CLIENT_SECRET, and otherwise from the credentials file `dev up` writes into its data directory.
    """
    try:
        credentials = resolve_credentials(ClientSettings(), data_dir)
        access_token = fetch_token(credentials, scope=scope)
    except (CredentialsMissing, TokenRequestFailed, ValidationError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(access_token)


def main() -> None:
    app()
