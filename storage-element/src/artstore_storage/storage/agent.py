"""The disk agent: a helper process that runs the element's blocking disk calls for the event loop.

Threads in the element's own process would do the same work, but each of their dozen system calls per
upload gives up the GIL and must win it back from the busy event loop; measured, those waits cost more
than the fsyncs. The agent has its own interpreter and GIL. The loop hands it a call as one pipe write and
learns the result from one pipe read, with no thread of its own involved.

Calls are module-level functions and picklable arguments; the agent runs them in a few threads of its own,
so independent fsyncs overlap. It dies with the element: it exits when its request pipe reaches end of
file, and the kernel kills it when the element's process ends (PR_SET_PDEATHSIG). It also holds the
element's directory lock, so a restarted element cannot begin recovery while an agent of the element that
crashed could still be renaming files.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from artstore_common.errors import ServiceUnavailable

_HEADER = struct.Struct("!I")
_SHARED, _LOG = 0, 1  # the agent's lanes: its shared threads, and one thread for the write-ahead log
_PR_SET_PDEATHSIG = 1

P = ParamSpec("P")
R = TypeVar("R")


class AgentGone(ServiceUnavailable):
    """The agent ended. The outcome of its calls in flight is unknown, so the element writes nothing more
    until a restart, whose recovery resolves them from the WAL."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"{detail}; this element takes no more writes until it is restarted", code="DISK_AGENT_GONE"
        )


class DiskAgent:
    """The element's side: `await agent.call(function, *args)`. Start and stop it on the event loop."""

    def __init__(self, threads: int, lock_fd: int | None = None) -> None:
        self._threads = threads
        self._lock_fd = lock_fd
        self._process: subprocess.Popen[bytes] | None = None
        self._requests = -1
        self._replies = -1
        self._outgoing = bytearray()
        self._incoming = bytearray()
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gone: str | None = None  # why the agent ended; each refusal raises a fresh AgentGone

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        request_read, request_write = os.pipe()
        reply_read, reply_write = os.pipe()
        keep = [request_read, reply_write] + ([self._lock_fd] if self._lock_fd is not None else [])
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "artstore_storage.storage.agent",
                str(request_read),
                str(reply_write),
                str(self._threads),
                str(os.getpid()),
            ],
            pass_fds=keep,
            stdin=subprocess.DEVNULL,
        )
        os.close(request_read)
        os.close(reply_write)
        os.set_blocking(request_write, False)
        os.set_blocking(reply_read, False)
        self._requests, self._replies = request_write, reply_read
        self._loop.add_reader(self._replies, self._on_replies)

    async def call(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `function` in one of the agent's threads."""
        return await self._call(_SHARED, function, args, kwargs)

    async def call_in_log_lane(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """Run `function` in the agent's one log thread, in the order of the calls.

        The WAL's appends go here: each upload waits for two of them, and in the shared threads they queued
        behind the placing of other uploads (three fsyncs each) whenever those took every thread.
        """
        return await self._call(_LOG, function, args, kwargs)

    async def _call(self, lane: int, function: Callable[..., R], args: Any, kwargs: Any) -> R:
        if self._gone is not None:
            raise AgentGone(self._gone)
        if self._loop is None or self._requests < 0:
            raise AgentGone("the disk agent is not running")
        self._next_id += 1
        job = self._next_id
        future: asyncio.Future[R] = self._loop.create_future()
        self._pending[job] = future
        message = pickle.dumps((job, lane, function, args, kwargs), pickle.HIGHEST_PROTOCOL)
        self._send(_HEADER.pack(len(message)) + message)
        return await future

    def _send(self, frame: bytes) -> None:
        if self._outgoing:
            self._outgoing += frame  # behind what the pipe did not take yet: _flush_outgoing sends it
            return
        written = self._write(frame)
        if 0 <= written < len(frame):
            self._outgoing += frame[written:]
            assert self._loop is not None
            self._loop.add_writer(self._requests, self._flush_outgoing)

    def _flush_outgoing(self) -> None:
        written = self._write(self._outgoing)
        if written < 0:
            return
        del self._outgoing[:written]
        if not self._outgoing:
            assert self._loop is not None
            self._loop.remove_writer(self._requests)

    def _write(self, data: bytes | bytearray) -> int:
        """What the request pipe took now; -1 when the agent is gone (every call then fails with 503)."""
        try:
            return os.write(self._requests, data)
        except BlockingIOError:
            return 0
        except OSError as exc:  # EPIPE: the agent died before its end of file reached _on_replies
            self._fail_all(f"the disk agent stopped taking calls ({exc})")
            return -1

    def _on_replies(self) -> None:
        try:
            data = os.read(self._replies, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            code = self._process.poll() if self._process is not None else None
            self._fail_all("the disk agent ended" + (f" (exit status {code})" if code is not None else ""))
            return
        self._incoming += data
        while len(self._incoming) >= _HEADER.size:
            (length,) = _HEADER.unpack_from(self._incoming)
            end = _HEADER.size + length
            if len(self._incoming) < end:
                break
            job, ok, value = pickle.loads(self._incoming[_HEADER.size : end])
            del self._incoming[:end]
            future = self._pending.pop(job, None)
            if future is None or future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def ready(self) -> None:
        """A health check: raises once the agent has gone."""
        if self._gone is not None:
            raise AgentGone(self._gone)

    def _fail_all(self, reason: str) -> None:
        assert self._loop is not None
        self._gone = reason
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._replies)
        with contextlib.suppress(Exception):
            self._loop.remove_writer(self._requests)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(AgentGone(reason))
        self._pending.clear()
        self._outgoing.clear()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for fd in (self._requests, self._replies):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._requests = self._replies = -1

    async def stop(self) -> None:
        """Close the request pipe (the agent exits at end of file) and wait for the process."""
        if self._loop is not None and self._replies >= 0:
            self._loop.remove_reader(self._replies)
            if self._outgoing:
                self._loop.remove_writer(self._requests)
        self._close_pipes()
        if self._process is not None:
            await asyncio.to_thread(self._process.wait)


# -- the agent process ---------------------------------------------------------------------------------


def _die_with(parent: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the element died before the line above took effect
        os._exit(1)


def _lane(threads: int, name: str, run: Callable[..., None]) -> queue.SimpleQueue[tuple[Any, ...]]:
    """`threads` threads taking calls from one queue: a put is all a call costs the reading thread (a
    ThreadPoolExecutor's submit, with its future and its idle-thread check, took a seventh of the agent's
    CPU)."""
    calls: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()

    def work() -> None:
        while True:
            run(*calls.get())

    for number in range(threads):
        threading.Thread(target=work, name=f"{name}_{number}", daemon=True).start()
    return calls


def _serve(requests: int, replies: int, threads: int) -> None:
    reply_lock = threading.Lock()

    def reply(job: int, ok: bool, value: Any) -> None:
        try:
            message = pickle.dumps((job, ok, value), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result or exception still answers the call
            message = pickle.dumps((job, False, OSError(f"{type(value).__name__}: {value} ({exc})")))
        frame = _HEADER.pack(len(message)) + message
        with reply_lock:
            view = memoryview(frame)
            while view:
                view = view[os.write(replies, view) :]

    def run(job: int, function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            value = function(*args, **kwargs)
        except BaseException as exc:
            reply(job, False, exc)
        else:
            reply(job, True, value)

    lanes = {_SHARED: _lane(threads, "agent", run), _LOG: _lane(1, "agent-log", run)}
    with os.fdopen(requests, "rb", buffering=1 << 16) as stream:
        while True:
            header = stream.read(_HEADER.size)
            if len(header) < _HEADER.size:
                break
            (length,) = _HEADER.unpack(header)
            job, lane, function, args, kwargs = pickle.loads(stream.read(length))
            lanes[lane].put((job, function, args, kwargs))
    # End of file: the element closed the pipe or died. Nothing more may touch its files.
    os._exit(0)


if __name__ == "__main__":
    _die_with(int(sys.argv[4]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the element must not stop its agent
    _serve(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
