"""Processes a previous `dev up` on the same data directory left behind when it was killed (kill -9).

Only a clean shutdown stops the children; after a kill they keep running, holding ports and files. They
are recognised by what ties them to this data directory, never by name alone: the admin, the ingester, the
query module and the storage elements by the data directory dev up put in their environment (a storage
element also by its ARTSTORE_SE_DATA_DIR), the embedded Redis by its working directory. (The embedded
PostgreSQL is found by its postmaster.pid; see infra.)
"""

from __future__ import annotations

import logging
from pathlib import Path

import psutil

from artstore_client.dev._environment import DATA_DIR_MARKER

_log = logging.getLogger("artstore.dev")
_SERVICES_BY_PORT_VARIABLE = (
    ("ARTSTORE_ADMIN_PORT", "admin"),
    ("ARTSTORE_INGESTER_PORT", "ingester"),
    ("ARTSTORE_QUERY_PORT", "query module"),
)


def _leftover_of(process: psutil.Process, root: Path, redis_dir: Path) -> str | None:
    """What the process is, if it belongs to this data directory; None otherwise."""
    try:
        environ = process.environ()
        marker = environ.get(DATA_DIR_MARKER)
        for port_variable, what in _SERVICES_BY_PORT_VARIABLE:
            if marker is not None and port_variable in environ:
                return what if Path(marker).resolve() == root else None
        data_dir = environ.get("ARTSTORE_SE_DATA_DIR")
        if data_dir is not None:
            path = Path(data_dir).resolve()
            return f"storage element {path.name}" if path.is_relative_to(root) else None
        if "redis-server" in process.name() and Path(process.cwd()).resolve() == redis_dir:
            return "embedded Redis"
    except (psutil.Error, OSError):
        pass  # gone meanwhile, or not ours to inspect
    return None


def stop_leftovers(root: Path, redis_dir: Path, timeout: float = 20.0) -> list[int]:
    """Call only while holding the data-directory lock, i.e. when no live `dev up` owns these processes."""
    root, redis_dir = root.resolve(), redis_dir.resolve()
    leftovers = []
    for process in psutil.process_iter():
        what = _leftover_of(process, root, redis_dir)
        if what is not None:
            _log.warning("stopping the %s (pid %d) an earlier dev up left running", what, process.pid)
            process.terminate()
            leftovers.append(process)
    _, alive = psutil.wait_procs(leftovers, timeout=timeout)
    for process in alive:
        process.kill()
    psutil.wait_procs(alive, timeout=5)
    return [process.pid for process in leftovers]
