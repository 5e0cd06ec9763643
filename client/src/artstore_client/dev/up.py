"""`artstore dev up`: start the cluster, report it, run until SIGINT or SIGTERM, then stop everything."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import warnings

from rich.console import Console
from rich.logging import RichHandler

from artstore_client.dev._lock import DataDirInUse
from artstore_client.dev.cluster import DevCluster, DevOptions, StartupFailed
from artstore_client.dev.infra import InfrastructureUnavailable
from artstore_client.dev.report import print_json_line, print_summary
from artstore_client.settings import DevSettings

_log = logging.getLogger("artstore.dev")
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _configure_logging(errors: Console) -> None:
    handler: logging.Handler
    if errors.is_terminal:
        handler = RichHandler(console=errors, show_path=False, markup=False, rich_tracebacks=False)
    else:  # a file or a pipe: whole lines, never wrapped, so they can be searched
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s dev up: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    _log.setLevel(logging.INFO)


async def _run(options: DevOptions, settings: DevSettings, json_output: bool, console: Console) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for stop_signal in _STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stop.set)
    cluster = DevCluster(options, settings)
    try:
        document = await cluster.start(stop)
        if document is not None:
            if json_output:
                print_json_line(document)
            else:
                print_summary(document, console)
            await stop.wait()
        _log.info("stopping the dev cluster")
    except (StartupFailed, InfrastructureUnavailable, DataDirInUse) as failure:
        _log.error("dev up failed: %s", failure)
        return 1
    finally:
        await cluster.stop()
        for stop_signal in _STOP_SIGNALS:
            loop.remove_signal_handler(stop_signal)
    _log.info("the dev cluster has stopped")
    return 0


def run_dev_up(options: DevOptions, settings: DevSettings, *, json_output: bool) -> int:
    errors = Console(stderr=True)
    _configure_logging(errors)
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR on servers and containers; it uses no such dir.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    return asyncio.run(_run(options, settings, json_output, Console()))
