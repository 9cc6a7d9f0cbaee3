"""The floor's figures beside issue 14's targets (`bench.floor` measures, this computes).

Pure: it takes what the phases measured and returns the numbers and the table. A floor is
what the parts DESIGN.md names cost with none of our code, so no code of ours can go under
it: where the floor is past a target, the target cannot be met with those parts here.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Iterable

import msgspec
from rich.table import Table

from bench.api_load import LoadResult
from bench.baselines import PgbenchResult, ProducerResult
from bench.cpu import CpuPerUnit
from bench.headline import API_VS_PGBENCH, CAPACITY_VS_PGBENCH, CPU_VS_PGBENCH, RELAY_VS_RAW


class Round(msgspec.Struct):
    pgbench: PgbenchResult
    pgbench_cpu: CpuPerUnit
    app: LoadResult  # the floor app, closed loop, right after

    @property
    def api_share(self) -> float:
        return self.app.throughput / self.pgbench.tps


class PipelineFloor(msgspec.Struct):
    rate: int  # orders a second offered
    offered: LoadResult  # vegeta's view of the floor app
    kafka: dict[str, object]  # what bench.floor_kafka sent and read
    cpu: CpuPerUnit  # per order: api = the floor app, relay = the Kafka clients, load = vegeta


class DrainRound(msgspec.Struct):
    db_only: float  # rows a second claimed and marked, nothing sent
    raw: ProducerResult  # the raw producer on the same rows, right before

    @property
    def share(self) -> float:
        return self.db_only / self.raw.events_per_s


class Floor(msgspec.Struct):
    rounds: list[Round]
    idle: dict[str, float]  # CPU seconds a second of each role with nothing to do
    passes: list[PipelineFloor]
    drains: list[DrainRound]
    pgbench_tps: float  # the rounds' median
    pgbench_cpu_ms: float  # per transaction, the rounds' median
    second_write_ms: float  # the consumer's write, counted as another create
    cpu_floor_ms: float  # per order: the cheaper pass and the second write
    cpu_floor_vs_pgbench: float  # a multiple of pgbench's CPU per transaction
    cpu_target_ms: float
    left_for_our_code_ms: float  # the target less the floor (negative: past it)
    api_ceiling_vs_pgbench: float  # the floor app ÷ pgbench, the rounds' median
    relay_ceiling_vs_raw: float  # the database side of a drain ÷ the raw producer, median
    capacity_target_rate: float  # orders a second: 15% of pgbench's tps
    cores_at_capacity_target: float  # the floor's CPU per order at that rate, in cores
    cores: int


def figures(
    rounds: list[Round],
    idle: dict[str, float],
    passes: list[PipelineFloor],
    drains: list[DrainRound],
) -> Floor:
    cheapest = min(passes, key=lambda p: p.cpu.total_ms)
    idle_postgres = idle.get("postgres", 0.0) * 1000 / cheapest.rate
    second_write = max(0.0, cheapest.cpu.ms_per_unit.get("postgres", 0.0) - idle_postgres)
    floor_ms = cheapest.cpu.total_ms + second_write
    pgbench_ms = statistics.median(r.pgbench_cpu.total_ms for r in rounds)
    tps = statistics.median(r.pgbench.tps for r in rounds)
    capacity_rate = CAPACITY_VS_PGBENCH * tps
    return Floor(
        rounds=rounds,
        idle=idle,
        passes=passes,
        drains=drains,
        pgbench_tps=tps,
        pgbench_cpu_ms=pgbench_ms,
        second_write_ms=round(second_write, 3),
        cpu_floor_ms=round(floor_ms, 3),
        cpu_floor_vs_pgbench=round(floor_ms / pgbench_ms, 2),
        cpu_target_ms=round(CPU_VS_PGBENCH * pgbench_ms, 3),
        left_for_our_code_ms=round(CPU_VS_PGBENCH * pgbench_ms - floor_ms, 3),
        api_ceiling_vs_pgbench=round(statistics.median(r.api_share for r in rounds), 4),
        relay_ceiling_vs_raw=round(statistics.median(d.share for d in drains), 4),
        capacity_target_rate=round(capacity_rate, 1),
        cores_at_capacity_target=round(floor_ms * capacity_rate / 1000, 2),
        cores=os.cpu_count() or 1,
    )


def table(floor: Floor) -> Table:
    out = Table(title="Issue 14's targets and what the parts cost with none of our code")
    for column in ("target", "the floor", "so"):
        out.add_column(column)
    cheapest = min(floor.passes, key=lambda p: p.cpu.total_ms)
    out.add_row(
        f"CPU per order ≤ {CPU_VS_PGBENCH:g}x pgbench's ({floor.cpu_target_ms:.2f} ms)",
        f"{floor.cpu_floor_ms:.2f} ms ({floor.cpu_floor_vs_pgbench:.1f}x) at "
        f"{cheapest.rate}/s: {_roles(cheapest, floor.second_write_ms)}",
        _left(floor.left_for_our_code_ms, "ms an order"),
    )
    out.add_row(
        f"capacity ≥ {CAPACITY_VS_PGBENCH:.0%} of pgbench ({floor.capacity_target_rate:,.0f}/s)",
        f"{floor.cores_at_capacity_target:.2f} cores at that rate",
        f"of {floor.cores}; the rest for our code and the p99's headroom",
    )
    out.add_row(
        f"API ≥ {API_VS_PGBENCH:.0%} of pgbench",
        f"{floor.api_ceiling_vs_pgbench:.0%} ({_each(f'{r.api_share:.0%}' for r in floor.rounds)})",
        _left(floor.api_ceiling_vs_pgbench - API_VS_PGBENCH, "of pgbench", percent=True),
    )
    pairs = _each(f"{d.db_only:,.0f} / {d.raw.events_per_s:,.0f}" for d in floor.drains)
    out.add_row(
        f"relay ≥ {RELAY_VS_RAW:.0%} of the raw producer",
        f"{floor.relay_ceiling_vs_raw:.0%} (rows/s claimed and marked, nothing sent / "
        f"the raw producer's events/s: {pairs})",
        _left(floor.relay_ceiling_vs_raw - RELAY_VS_RAW, "of the raw producer", percent=True),
    )
    return out


def _each(values: Iterable[str]) -> str:
    return ", ".join(values)


def _roles(cheapest: PipelineFloor, second_write_ms: float) -> str:
    names = {"api": "HTTP", "relay": "Kafka clients", "load": "vegeta"}
    each = [
        f"{names.get(role, role)} {ms:.2f}" for role, ms in cheapest.cpu.ms_per_unit.items() if ms
    ]
    return ", ".join([*each, f"second write {second_write_ms:.2f}"])


def _left(room: float, unit: str, *, percent: bool = False) -> str:
    amount = f"{abs(room):.0%}" if percent else f"{abs(room):.2f}"
    if room < 0:
        return f"past the target by {amount} {unit} before any code of ours"
    return f"{amount} {unit} left for all of our code"
