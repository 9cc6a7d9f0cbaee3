"""The run's headline: the figures issue 14 is judged by, as plain numbers a script can read.

`compute` is pure: it takes what the phases measured and returns the numbers (None where a
phase did not run or found nothing). Ratios are fractions (0.15 = 15%), except the CPU
comparison, which is a multiple (8.0 = eight times pgbench's CPU per transaction).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from bench.api_load import LoadResult
from bench.baselines import DrainVsRaw, PgbenchResult
from bench.capacity import Capacity
from bench.cpu import CpuPerUnit

CAPACITY_VS_PGBENCH = 0.15  # sustained capacity ≥ 15% of pgbench's best tps
CPU_VS_PGBENCH = 8.0  # CPU per order ≤ 8 times pgbench's CPU per transaction
API_VS_PGBENCH = 0.40
RELAY_VS_RAW = 0.50


class Headline(msgspec.Struct):
    sustained_capacity: float | None  # orders/s
    capacity_vs_pgbench: float | None  # ÷ pgbench's best tps in the same run
    e2e_p50_ms_at_capacity: float | None
    e2e_p95_ms_at_capacity: float | None
    e2e_p99_ms_at_capacity: float | None
    cpu_ms_per_order: float | None  # all processes, at a fixed fraction of capacity
    cpu_per_order_vs_pgbench: float | None  # ÷ pgbench's CPU ms per transaction
    api_vs_pgbench: float | None  # best closed-loop throughput of each
    relay_vs_raw: float | None  # the slowest key cardinality's drain ÷ its raw producer
    relay_vs_raw_keys: int | None  # that cardinality
    pgbench_best_tps: float | None
    pgbench_cpu_ms_per_transaction: float | None


def _ratio(value: float | None, base: float | None, digits: int = 4) -> float | None:
    if value is None or not base:
        return None
    return round(value / base, digits)


def compute(
    capacity: Capacity | None,
    pgbench: Sequence[PgbenchResult],
    closed: Sequence[LoadResult],
    drains: Sequence[DrainVsRaw],
    orders_cpu: CpuPerUnit | None,
    pgbench_cpu: CpuPerUnit | None,
) -> Headline:
    best_pg = max((r.tps for r in pgbench), default=None)
    best_api = max((r.throughput for r in closed), default=None)
    rate = float(capacity.rate) if capacity and capacity.rate is not None else None
    flow = capacity.at_capacity if capacity else None
    slowest = min(drains, key=lambda d: d.share, default=None)
    cpu = orders_cpu.total_ms if orders_cpu else None
    return Headline(
        sustained_capacity=rate,
        capacity_vs_pgbench=_ratio(rate, best_pg),
        e2e_p50_ms_at_capacity=flow.p50_ms if flow and rate is not None else None,
        e2e_p95_ms_at_capacity=flow.p95_ms if flow and rate is not None else None,
        e2e_p99_ms_at_capacity=flow.p99_ms if flow and rate is not None else None,
        cpu_ms_per_order=cpu,
        cpu_per_order_vs_pgbench=_ratio(cpu, pgbench_cpu.total_ms if pgbench_cpu else None, 2),
        api_vs_pgbench=_ratio(best_api, best_pg),
        relay_vs_raw=round(slowest.share, 4) if slowest else None,
        relay_vs_raw_keys=slowest.keys if slowest else None,
        pgbench_best_tps=best_pg,
        pgbench_cpu_ms_per_transaction=pgbench_cpu.total_ms if pgbench_cpu else None,
    )
