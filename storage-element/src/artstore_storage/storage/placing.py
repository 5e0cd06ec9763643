"""An upload's blocking disk steps as calls for the disk agent (storage/agent.py): small and picklable."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from artstore_common.errors import AlreadyExists
from artstore_storage.storage._durable import fsync_dir, make_dirs, write_file_durably


@dataclass(frozen=True)
class Placement:
    """Paths as strings: this crosses the pipe to the agent, where a Path would be parsed again."""

    data_temp: str
    tail: bytes  # the upload's last bytes, not yet written to data_temp
    attr_temp: str
    attributes: bytes
    data_final: str
    attr_final: str
    sync_dirs: tuple[str, ...]  # the shard, and its parents while they may not be durable yet


# Threads of the process running `place` (the disk agent) for the sidecar's fsync: as many as the agent may
# have (ARTSTORE_SE_AGENT_THREADS is at most 64), so no upload being placed waits for one. The pool starts a
# thread only when none is idle, so in the element's own process, which never calls `place`, it has none.
_SIDECARS = ThreadPoolExecutor(64, "sidecar")


def place(job: Placement) -> None:
    # Step 3: the bytes (and the sidecar's temp copy) are durable before any name points at them, or a
    # crash could leave a visible file whose blocks were never written. The two fsyncs run at once: the
    # filesystem then commits its journal once for both new files instead of once for each.
    sidecar = _SIDECARS.submit(write_file_durably, job.attr_temp, job.attributes)
    try:
        write_file_durably(job.data_temp, job.tail, append=True)
    finally:
        sidecar.result()  # never go on (or raise) while the sidecar is still being written
    # Step 4: data first, then attr.json, which makes the file visible: a reader that finds attr.json
    # always finds the bytes. A rename (or mkdir) is durable only once its directory is fsynced.
    if len(job.sync_dirs) > 1:
        make_dirs(Path(os.path.dirname(job.data_final)))
    os.replace(job.data_temp, job.data_final)
    os.replace(job.attr_temp, job.attr_final)
    for directory in job.sync_dirs:
        fsync_dir(directory)


def refuse_existing(file_id: str, *paths: str) -> None:
    """The precondition of a create's WAL record: the id must be free (it runs where the record is written)."""
    if any(os.path.exists(path) for path in paths):
        raise AlreadyExists(f"file {file_id} already exists; files are written once")
