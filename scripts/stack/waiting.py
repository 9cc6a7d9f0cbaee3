"""Waiting on conditions with a deadline: the only way this project synchronises."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The condition did not hold before the deadline."""


class GiveUp(RuntimeError):
    """Raised by a condition when waiting longer cannot help: the process it waits on
    has exited. `wait_for` lets it through at once instead of waiting out its timeout."""


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Call `condition` until it returns something truthy, and return that.

    Exceptions raised by `condition` count as "not yet" (a port that refuses
    connections is simply not ready); the last one is chained to the timeout.
    `GiveUp` is the exception: it ends the wait at once.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except GiveUp:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
            last_error = exc
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}") from last_error
        time.sleep(interval)
