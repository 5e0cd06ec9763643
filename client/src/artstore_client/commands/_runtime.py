"""What every client command shares: the SDK client it talks through, and how a failure reaches the user."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from artstore_client.credentials import DEFAULT_DATA_DIR

if TYPE_CHECKING:
    from artstore_client import Client, RetryWait

__all__ = ["DEFAULT_DATA_DIR", "DataDir", "JsonOutput", "Quiet", "connected", "fail", "usage_error"]

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="ARTSTORE_DATA_DIR",
        help="the dev cluster's data directory (its credentials.json is read for what ARTSTORE_* leaves unset)",
        show_default=True,
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")]


def fail(message: str, status: int = 1) -> NoReturn:
    """One line on stderr and the exit status: what went wrong, never a traceback."""
    sys.stdout.flush()
    sys.stderr.write(f"artstore: {_one_line(message)}\n")
    sys.stderr.flush()
    raise typer.Exit(status)


def usage_error(message: str) -> NoReturn:
    raise typer.BadParameter(message)


def _one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message.strip())


def describe(error: Exception) -> str | None:
    """The line for a failure the user can act on; None for a bug, which keeps its traceback."""
    from artstore_client.errors import ApiError, ArtStoreError

    if isinstance(error, ApiError):
        detail = error.detail or error.title or "no detail given"
        return f"{error.code}: {detail} (HTTP {error.status})"
    if isinstance(error, ArtStoreError):
        return str(error) or type(error).__name__
    if isinstance(error, OSError) and error.strerror:
        # A local file that cannot be read or written (a full disk, a permission): the user's to fix.
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    import httpx
    import pydantic

    if isinstance(error, httpx.HTTPError):
        return f"the connection failed: {error or type(error).__name__}"
    if isinstance(error, pydantic.ValidationError):
        return f"invalid ARTSTORE_* settings: {error}"
    return None


@contextmanager
def reporting_errors() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED)
    except BrokenPipeError:
        # The reader of stdout went away (`| head`): nothing left to tell it.
        _silence_stdout()
        raise typer.Exit(1) from None
    except Exception as error:
        line = describe(error)
        if line is None:
            raise
        fail(line)


def _silence_stdout() -> None:
    # Python would report the broken pipe again when it flushes stdout at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


@contextmanager
def connected(data_dir: Path, **options: Any) -> Iterator[Client]:
    """The SDK client for the configured cluster; its failures become one line and exit status 1."""
    with reporting_errors():
        # Imported here: `artstore --help` and `artstore dev up` do not load the SDK.
        from artstore_client import Client

        options.setdefault("on_retry_wait", _tell_of_wait)
        with Client.from_environment(data_dir, **options) as client:
            yield client


def _tell_of_wait(wait: RetryWait) -> None:
    """A line on stderr while the SDK waits to send a refused request again, so a pause is explained."""
    sys.stderr.write(
        f"artstore: the {wait.service} answered {wait.code} (HTTP {wait.status}); "
        f"trying again in {round(wait.seconds, 1):g} s ({wait.retry} of {wait.attempts})\n"
    )
    sys.stderr.flush()
