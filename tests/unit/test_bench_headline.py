"""The bench's headline (bench/headline.py, bench/cpu.py): the numbers issue 14 is judged by,
computed from what the phases measured, and the tables and JSON that carry them."""

from __future__ import annotations

import os

import msgspec
import pytest

from bench import report
from bench.api_load import LoadResult
from bench.baselines import DrainVsRaw, PgbenchResult, ProducerResult
from bench.capacity import Capacity, Step
from bench.cpu import CpuPerUnit, per_unit, used
from bench.end_to_end import EndToEnd
from bench.headline import Headline, compute
from bench.memory import BENCH, MACHINE
from bench.relay_drain import Drain
from bench.results import Results


def pgbench(concurrency: int, tps: float) -> PgbenchResult:
    return PgbenchResult(concurrency, 10, int(tps * 10), 0, tps, 1.0, 2.0, 3.0)


def closed(concurrency: int, throughput: float) -> LoadResult:
    return LoadResult(
        mode="closed", concurrency=concurrency, offered_rate=None, seconds=10,
        requests=int(throughput * 10), ok=int(throughput * 10), errors={},
        throughput=throughput, p50_ms=1, p95_ms=2, p99_ms=3, max_ms=4,
    )  # fmt: skip


def pair(keys: int, relay: float, raw: float) -> DrainVsRaw:
    drain = Drain(
        rows=10_000, keys=keys, seconds=10_000 / relay, events_per_s=relay, wall_seconds=1.0,
        failed_attempts=0, batch_size=2000, batch_cycle_ms=100.0,
    )  # fmt: skip
    return DrainVsRaw(keys, drain, ProducerResult(10_000, 10_000 / raw, raw, 0))


def flow_at(rate: int) -> EndToEnd:
    return EndToEnd(
        offered_rate=rate, seconds=10, orders=rate * 10, confirmed=rate * 10, p50_ms=30.0,
        p95_ms=60.0, p99_ms=90.0, max_ms=120.0, relay_p50_ms=None, relay_p99_ms=None,
        consumer_p50_ms=None, consumer_p99_ms=None,
    )  # fmt: skip


CAPACITY = Capacity(
    rate=400,
    steps=[Step(100, True), Step(200, True), Step(400, True), Step(800, False, "p99")],
    step_seconds=10,
    at_capacity=flow_at(400),
)
ORDERS_CPU = CpuPerUnit("orders", 2000, 20.0, {"api": 2.0, "postgres": 2.0}, 4.0)
PGBENCH_CPU = CpuPerUnit("pgbench c=8", 27_000, 10.0, {"postgres": 0.4, "load": 0.1}, 0.5)


def full() -> Headline:
    return compute(
        CAPACITY,
        [pgbench(8, 2000.0), pgbench(32, 1500.0)],
        [closed(8, 500.0), closed(32, 700.0)],
        [pair(10_000, 12_000, 24_000), pair(1_000, 1_500, 25_000), pair(1, 6_000, 20_000)],
        ORDERS_CPU,
        PGBENCH_CPU,
    )


def test_headline_ratios_use_the_best_of_each_and_the_slowest_drain() -> None:
    h = full()
    assert h.sustained_capacity == 400
    assert h.pgbench_best_tps == 2000.0
    assert h.capacity_vs_pgbench == 0.2
    assert (h.e2e_p50_ms_at_capacity, h.e2e_p99_ms_at_capacity) == (30.0, 90.0)
    assert h.cpu_ms_per_order == 4.0
    assert h.cpu_per_order_vs_pgbench == 8.0
    assert h.api_vs_pgbench == 0.35  # 700 (c=32) over 2000 (c=8): best of each
    assert h.relay_vs_raw == 0.06  # 1,500 of 25,000 at 1,000 keys
    assert h.relay_vs_raw_keys == 1_000


def test_headline_is_empty_not_wrong_when_phases_found_nothing() -> None:
    nothing = Capacity(rate=None, steps=[Step(100, False, "x")], step_seconds=4, at_capacity=None)
    h = compute(nothing, [], [], [], None, None)
    assert h == Headline(*([None] * len(Headline.__struct_fields__)))


def test_headline_is_in_the_json_as_plain_numbers() -> None:
    document = msgspec.json.decode(msgspec.json.encode(full()))
    for name in (
        "sustained_capacity", "capacity_vs_pgbench", "e2e_p99_ms_at_capacity",
        "cpu_ms_per_order", "cpu_per_order_vs_pgbench", "api_vs_pgbench", "relay_vs_raw",
    ):  # fmt: skip
        assert isinstance(document[name], int | float), name


def test_cpu_per_unit_leaves_out_the_machine_and_the_bench_and_sums_the_roles() -> None:
    before = {"api": 1.0, "postgres": 2.0, BENCH: 1.0, MACHINE: 100.0}
    after = {"api": 3.0, "postgres": 3.0, "kafka": 0.5, BENCH: 4.0, MACHINE: 110.0}
    seconds = used(before, after)
    assert seconds == {"api": 2.0, "kafka": 0.5, "postgres": 1.0}
    cost = per_unit("orders", seconds, 1000, 10.0)
    assert cost.ms_per_unit == {"api": 2.0, "kafka": 0.5, "postgres": 1.0}
    assert cost.total_ms == 3.5


def test_cpu_per_unit_refuses_zero_units() -> None:
    with pytest.raises(ValueError, match="no work done"):
        per_unit("orders", {"api": 1.0}, 0, 10.0)


def results_with(h: Headline, cores: str) -> Results:
    return Results(
        started_at="2026-11-30T05:00:00+00:00", seconds=1.0, machine={"cores": cores},
        settings={}, headline=h, api_closed_loop=[], pgbench=[], api_open_loop=[],
        end_to_end=[], capacity=CAPACITY, cpu_per_order=ORDERS_CPU, pgbench_cpu=PGBENCH_CPU,
        memory={}, cpu_cores={"step 100/s": {"api": 0.5}},
    )  # fmt: skip


def test_tables_show_the_headline_targets_and_the_machines_core_count() -> None:
    results = results_with(full(), cores="16")
    results.targets = report.targets(results)
    text = report.markdown(results)
    assert "**Headline**" in text
    assert "| sustained capacity | 400 orders/s |" in text
    assert "| capacity ÷ pgbench | 20.0% |" in text
    assert "relay ÷ raw producer (slowest: 1,000 keys) | 6% |" in text
    assert "| CPU per order ÷ pgbench's | 8.0x |" in text
    assert "| pgbench's CPU per transaction | 0.50 ms |" in text
    assert "of 16)" in text and "of 2)" not in text
    verdicts = {t.name: t.met for t in results.targets}
    assert verdicts["sustained capacity ÷ pgbench's best tps"] is True  # 20% ≥ 15%
    assert verdicts["CPU per order ÷ pgbench's per transaction"] is True  # 8.0 ≤ 8
    assert verdicts["API ÷ pgbench (best throughput of each)"] is False  # 35% < 40%
    assert verdicts["relay drain ÷ raw producer, slowest key count"] is False


def test_a_schema_1_file_still_loads_without_a_headline() -> None:
    old = {
        "schema": 1, "started_at": "x", "seconds": 1.0, "machine": {}, "settings": {},
        "api_closed_loop": [], "pgbench": [], "api_open_loop": [], "end_to_end": [],
        "relay_drain": None, "raw_producer": None, "memory": {}, "cpu_cores": {},
    }  # fmt: skip
    results = msgspec.json.decode(msgspec.json.encode(old), type=Results)
    assert results.headline is None
    assert results.relay_drains == []
    assert "Headline" not in report.markdown(results)


def test_the_unfenced_drain_is_a_row_of_its_own_in_the_drain_table() -> None:
    results = results_with(full(), cores="2")
    results.relay_drains = [pair(10_000, 4_000, 50_000), pair(1, 1_000, 50_000)]
    results.relay_drain_unfenced = pair(10_000, 13_000, 50_000)
    text = report.markdown(results)
    assert "| 10,000, fencing off | 10,000 | 13,000 |" in text
    assert "| 1 | 10,000 | 1,000 |" in text


def test_the_core_count_is_what_this_process_may_use() -> None:
    assert report.usable_cores() == len(os.sched_getaffinity(0))
    assert 1 <= report.usable_cores() <= (os.cpu_count() or 1)
