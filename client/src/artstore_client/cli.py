"""The `artstore` command line. Commands parse their options and hand over to a module that does the work.

Only `dev up` loads the servers' code, and the client commands load the SDK only when they run: the
command starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from artstore_client.commands import admin, catalog, transfers
from artstore_client.commands._runtime import DEFAULT_DATA_DIR, DataDir, connected
from artstore_client.dev.layout import QUERY_OFFSET
from artstore_client.settings import DevSettings

app = typer.Typer(
    help="ArtStore: client and local dev cluster.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    # A crash must not print the locals of its frames: they hold client secrets and tokens.
    pretty_exceptions_show_locals=False,
)
dev_app = typer.Typer(help="Run ArtStore on this machine for development.", no_args_is_help=True)

DevDataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="ARTSTORE_DATA_DIR", help="the dev cluster's data directory", show_default=True
    ),
]


def dev_up(
    data_dir: DevDataDir = DEFAULT_DATA_DIR,
    base_port: Annotated[
        int,
        typer.Option(
            min=1,
            max=65535 - QUERY_OFFSET,
            envvar="ARTSTORE_BASE_PORT",
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
        typer.echo(f"artstore: invalid ARTSTORE_* settings:\n{exc}", err=True)
        raise typer.Exit(1) from None
    status = run_dev_up(DevOptions(data_dir, base_port), settings, json_output=json_output)
    raise typer.Exit(status)


def token(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    scope: Annotated[str | None, typer.Option(help="space-separated permissions to ask for")] = None,
) -> None:
    """Print an access token for the configured account.

    The admin URL and the account come from ARTSTORE_ADMIN_URL, ARTSTORE_CLIENT_ID and
    ARTSTORE_CLIENT_SECRET, and otherwise from the credentials file `dev up` writes into its data directory.
    """
    with connected(data_dir, scope=scope) as client:
        access_token = client.token()
    typer.echo(access_token)


# In the order `artstore --help` lists them: the everyday commands first.
app.command()(token)
for command in (
    transfers.upload,
    transfers.download,
    catalog.info,
    catalog.search,
    catalog.update,
    catalog.delete,
):
    app.command()(command)
app.add_typer(admin.se_app, name="se")
app.add_typer(admin.accounts_app, name="accounts")
app.add_typer(admin.audit_app, name="audit")
dev_app.command("up")(dev_up)
app.add_typer(dev_app, name="dev")


def main() -> None:
    app()
