"""`artstore upload` and `artstore download`: bytes into and out of the cluster, streamed, with a progress bar."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from artstore_client.commands import _output, _progress
from artstore_client.commands._attributes import Metadata, Tags, parse_metadata
from artstore_client.commands._runtime import (
    DEFAULT_DATA_DIR,
    DataDir,
    JsonOutput,
    Quiet,
    connected,
    fail,
    usage_error,
)

if TYPE_CHECKING:
    from artstore_client import Client
    from artstore_client._models import FileInfo

STDIO = "-"
STDIN_NAME = "stdin"


class Retention(StrEnum):
    permanent = "permanent"
    temporary = "temporary"


def upload(
    source: Annotated[str, typer.Argument(metavar="PATH|-", help="the file to upload; - streams stdin")],
    name: Annotated[
        str | None, typer.Option(help="the stored filename [default: the file's name, 'stdin' for -]")
    ] = None,
    content_type: Annotated[
        str | None, typer.Option(help="media type [default: guessed by the server]")
    ] = None,
    description: Annotated[str | None, typer.Option(help="free text, found by search")] = None,
    tag: Tags = None,
    metadata: Metadata = None,
    retention: Annotated[
        Retention | None,
        typer.Option(help="permanent goes to an rw element, temporary to an edit one [default: permanent]"),
    ] = None,
    ttl_days: Annotated[
        int | None, typer.Option(min=1, help="days a temporary file is kept (implies --retention temporary)")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="the content's SHA-256 (hex): the server refuses other bytes")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="a retry with the same key returns the first upload's file")
    ] = None,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Upload a file (or stdin) and print its id, size, checksum and storage element."""
    attributes = parse_metadata(metadata)
    if retention is None:
        retention = Retention.temporary if ttl_days is not None else Retention.permanent
    elif retention is Retention.permanent and ttl_days is not None:
        usage_error("--ttl-days applies to temporary files only: a permanent file never expires")
    with ExitStack() as stack:
        if source == STDIO:
            stream, size, filename = sys.stdin.buffer, None, name or STDIN_NAME
        else:
            stream = stack.enter_context(_open_source(Path(source)))
            size, filename = os.fstat(stream.fileno()).st_size, name or Path(source).name
        client = stack.enter_context(connected(data_dir))
        enabled = _progress.wanted(quiet=quiet, json_output=json_output)
        bar = stack.enter_context(_progress.transfer_progress(filename, total=size, enabled=enabled))
        stored = client.upload(
            stream,
            filename=filename,
            content_type=content_type,
            description=description,
            tags=tag,
            metadata=attributes,
            retention=retention.value,
            ttl_days=ttl_days,
            sha256=sha256,
            idempotency_key=idempotency_key,
            progress=bar.advance,
        )
    if json_output:
        _output.print_json(stored.raw)
        return
    _output.print_line(
        f"{stored.file_id}  {stored.original_filename}  {_output.human_size(stored.size_bytes)}"
        f"  sha256 {stored.sha256}  on {stored.storage_element_id}"
    )


def _open_source(path: Path) -> BinaryIO:
    if path.is_dir():
        fail(f"{path} is a directory: upload takes one file")
    try:
        return path.open("rb")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except OSError as error:
        fail(f"cannot read {path}: {error.strerror or error}")


def download(
    file_id: Annotated[str, typer.Argument(help="the file's id (upload and search print it)")],
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH|-",
            help="where to write: a file, a directory, or - for stdout [default: the original filename "
            "in the current directory]",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="overwrite an existing file")] = False,
    json_output: JsonOutput = False,
    quiet: Quiet = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Download a file; its SHA-256 is checked, and a file is only ever complete under its final name."""
    if output == STDIO and json_output:
        usage_error("--json and -o - both want stdout: write the file elsewhere to get its attributes")
    enabled = _progress.wanted(quiet=quiet, json_output=json_output)
    with connected(data_dir) as client:
        if output == STDIO:
            _download_to(client, file_id, sys.stdout.buffer, label=file_id, enabled=enabled)
            return
        destination = _destination(client, file_id, output)
        if destination.exists() and not force:
            fail(f"{destination} already exists: pass --force to overwrite it")
        stored = _download_to(client, file_id, destination, label=destination.name, enabled=enabled)
    if json_output:
        _output.print_json({**stored.raw, "path": str(destination)})
        return
    _output.print_line(
        f"{destination}  {_output.human_size(stored.size_bytes)}  sha256 {stored.sha256} (verified)"
    )


def _download_to(
    client: Client, file_id: str, destination: Path | BinaryIO, *, label: str, enabled: bool
) -> FileInfo:
    with _progress.transfer_progress(label, total=None, enabled=enabled) as bar:
        return client.download(file_id, destination, progress=bar.advance, total=bar.set_total)


def _destination(client: Client, file_id: str, output: str | None) -> Path:
    if output is not None and not Path(output).is_dir():
        return Path(output)
    folder = Path(output) if output is not None else Path()
    return folder / _safe_name(client.info(file_id).original_filename, file_id)


def _safe_name(original: str | None, file_id: str) -> str:
    # The stored name comes from whoever uploaded the file: keep only its last part, never a path.
    name = Path(original or "").name
    return name if name not in ("", ".", "..") else file_id
