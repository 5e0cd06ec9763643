"""Waiting for a condition with a generous deadline instead of asserting on timing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], *, within: float, what: str, every: float = 0.25) -> T:
    """Call `probe` until it returns something truthy; after `within` seconds fail with its last outcome.

    A probe may raise to say "not yet" (a dependency on its way back fails a call or two).
    """
    deadline = time.monotonic() + within
    while True:
        outcome: object
        try:
            result = probe()
        except Exception as exc:
            outcome = exc
        else:
            if result:
                return result
            outcome = result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s; last outcome: {outcome!r}")
        time.sleep(every)
