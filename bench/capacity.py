"""Sustained capacity: the highest open-loop rate the whole pipeline keeps up with.

A rate *holds* when, in one short open-loop step at that rate, the load generator really sent
it, every request got its 201, every order was confirmed by the consumer, and the end-to-end
p99 (commit → consumer's change, bench/end_to_end.py) is within the target. The search is
pure (`next_rate` decides from the steps so far) so that its decisions can be unit-tested; the
bench's run loop (bench/run.py) performs the steps.

The search is bounded: it grows the rate geometrically from `start` until a step fails (or
shrinks it until one holds), then bisects between the highest rate that held *below* the
lowest rate that failed and that failure, until the bracket is narrower than `resolution`
(relative) or `max_steps` steps were run. Capacity is deliberately conservative: a rate that
held above a rate that failed (noise on a shared machine) does not count.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from bench.api_load import LoadResult
from bench.end_to_end import EndToEnd

E2E_P99_MS = 100.0
SENT_SHARE = 0.95  # below this share of the planned requests, the rate was not offered


class Step(msgspec.Struct):
    """One step of the search: the rate tried and whether it held (`reason` says why not)."""

    rate: int
    held: bool
    reason: str = ""


class Capacity(msgspec.Struct):
    """The search's outcome. `rate` is None when no rate at or above the minimum held."""

    rate: int | None
    steps: list[Step]
    step_seconds: int
    at_capacity: EndToEnd | None  # the end-to-end figures of the step that set `rate`


@dataclass(frozen=True)
class Plan:
    start: int = 100  # orders/s of the first step
    factor: float = 2.0  # growth (and shrink) between steps until the first change of verdict
    resolution: float = 0.1  # stop bisecting when (failed - held) ≤ resolution * held
    max_steps: int = 8
    min_rate: int = 5  # below this the pipeline is broken, not slow: stop
    max_rate: int = 20_000  # a bound for a machine far faster than expected


def judge(load: LoadResult, flow: EndToEnd, p99_limit_ms: float = E2E_P99_MS) -> str:
    """Why the step fails, or "" when it holds. Checks are in the order a reader fixes them."""
    planned = flow.offered_rate * flow.seconds
    if load.requests < SENT_SHARE * planned:
        return f"the load generator sent only {load.requests:,} of {planned:,} requests"
    failed = load.requests - load.ok
    if failed:
        return f"{failed:,} of {load.requests:,} requests failed"
    if flow.orders < load.ok or flow.confirmed < flow.orders:
        return f"{flow.confirmed:,} of {load.ok:,} orders confirmed"
    if flow.p99_ms is None or flow.p99_ms > p99_limit_ms:
        return f"end-to-end p99 {flow.p99_ms} ms > {p99_limit_ms:.0f} ms"
    return ""


def bracket(steps: Sequence[Step]) -> tuple[int | None, int | None]:
    """(highest rate that held below every failure, lowest rate that failed)."""
    failed = min((s.rate for s in steps if not s.held), default=None)
    held = [s.rate for s in steps if s.held and (failed is None or s.rate < failed)]
    return max(held, default=None), failed


def next_rate(steps: Sequence[Step], plan: Plan) -> int | None:
    """The rate of the next step, or None when the search is over."""
    if not steps:
        return plan.start
    if len(steps) >= plan.max_steps:
        return None
    held, failed = bracket(steps)
    if failed is None:  # everything held so far: grow
        assert held is not None
        grown = min(plan.max_rate, math.ceil(held * plan.factor))
        return grown if grown > held else None
    if held is None:  # nothing held yet: shrink
        shrunk = math.floor(failed / plan.factor)
        return shrunk if shrunk >= plan.min_rate else None
    if failed - held <= max(1.0, plan.resolution * held):
        return None
    return (held + failed) // 2


def capacity(steps: Sequence[Step]) -> int | None:
    """The sustained capacity the steps show: the highest rate that held below any failure."""
    return bracket(steps)[0]
