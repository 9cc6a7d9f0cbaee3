"""CPU per unit of work (an order, a pgbench transaction), per process role, from two marks.

The marks are `Sampler.cpu_mark()`s (bench/memory.py): CPU seconds used so far by each role
(api, postgres, kafka, relay, consumer, load = the load generators vegeta, wrk or pgbench;
bench = the bench's own sampling and polling) and by the whole machine. Orders and pgbench
transactions are measured the same way: every role of the system and its load generator, busy
or idle, over the same kind of window, divided by the units of work done in it. The bench's
own process and the machine's total are left out: they are the cost of measuring and noise.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from bench.memory import BENCH, MACHINE

NOT_COUNTED = frozenset({MACHINE, BENCH})


class CpuPerUnit(msgspec.Struct):
    """CPU milliseconds per unit of work, per role and summed over the roles."""

    what: str  # e.g. "orders at 50% of capacity (60/s)" or "pgbench c=8"
    units: int  # orders confirmed, or transactions processed
    seconds: float  # the window's length
    ms_per_unit: dict[str, float]  # role -> CPU ms per unit
    total_ms: float  # summed over the roles


def used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """CPU seconds each role used between two marks (the machine's total and the bench's own
    process left out)."""
    counted = (role for role in sorted(after) if role not in NOT_COUNTED)
    return {role: after[role] - before.get(role, 0.0) for role in counted}


def per_unit(
    what: str, seconds_used: Mapping[str, float], units: int, seconds: float
) -> CpuPerUnit:
    """Spread each role's CPU seconds over `units` (which must be positive)."""
    if units <= 0:
        raise ValueError(f"no work done in {what}: CPU per unit is undefined")
    each = {role: round(cpu * 1000 / units, 3) for role, cpu in seconds_used.items()}
    return CpuPerUnit(
        what=what,
        units=units,
        seconds=round(seconds, 2),
        ms_per_unit=each,
        total_ms=round(sum(cpu * 1000 / units for cpu in seconds_used.values()), 3),
    )
