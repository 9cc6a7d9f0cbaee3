"""The floor's figures (bench/floor_figures.py): what the parts cost with none of our code,
set beside issue 14's targets — medians of the rounds, the cheaper pipeline pass, and the
verdict a reader takes from the table."""

from __future__ import annotations

from rich.console import Console

from bench.api_load import LoadResult
from bench.baselines import PgbenchResult, ProducerResult
from bench.cpu import CpuPerUnit
from bench.floor_app import create_statement
from bench.floor_figures import DrainRound, Floor, PipelineFloor, Round, figures, table


def cpu(ms: dict[str, float]) -> CpuPerUnit:
    return CpuPerUnit(what="x", units=1000, seconds=10, ms_per_unit=ms, total_ms=sum(ms.values()))


def load(throughput: float) -> LoadResult:
    return LoadResult(
        mode="closed", concurrency=32, offered_rate=None, seconds=10, requests=10,
        ok=10, errors={}, throughput=throughput, p50_ms=1, p95_ms=2, p99_ms=3, max_ms=4,
    )  # fmt: skip


def a_round(tps: float, cpu_ms: float, app: float) -> Round:
    base = PgbenchResult(32, 10, int(tps * 10), 0, tps, 1.0, 2.0, 3.0)
    return Round(base, cpu({"postgres": cpu_ms}), load(app))


def a_pass(ms: dict[str, float]) -> PipelineFloor:
    return PipelineFloor(rate=300, offered=load(300), kafka={}, cpu=cpu(ms))


def drained(db_only: float, raw: float) -> DrainRound:
    return DrainRound(db_only, ProducerResult(100_000, 100_000 / raw, raw, 0))


def measured(*, kafka_ms: float = 1.0) -> Floor:
    rounds = [a_round(3000, 0.5, 1500), a_round(2000, 0.8, 1200), a_round(2500, 0.6, 900)]
    passes = [
        a_pass({"api": 1.0, "postgres": 1.1, "kafka": kafka_ms + 1, "relay": 0.4}),
        a_pass({"api": 1.0, "postgres": 1.1, "kafka": kafka_ms, "relay": 0.4}),
    ]
    drains = [drained(30_000, 100_000), drained(20_000, 80_000), drained(25_000, 50_000)]
    # PostgreSQL idle: 0.03 CPU seconds a second, 0.1 ms an order at 300 orders a second.
    return figures(rounds, {"postgres": 0.03, "kafka": 0.02}, passes, drains)


def test_each_ratio_is_the_median_of_its_rounds() -> None:
    floor = measured()
    assert floor.pgbench_tps == 2500
    assert floor.pgbench_cpu_ms == 0.6
    assert floor.api_ceiling_vs_pgbench == 0.5  # 1500/3000, 1200/2000 = 0.6, 900/2500 = 0.36
    assert floor.relay_ceiling_vs_raw == 0.3  # 0.3, 0.25, 0.5


def test_the_cpu_floor_is_the_cheaper_pass_and_a_second_write_without_the_idle_share() -> None:
    floor = measured()
    assert floor.second_write_ms == 1.0  # the create's 1.1 ms less 0.1 of idle
    assert floor.cpu_floor_ms == 4.5  # 1.0 + 1.1 + 1.0 + 0.4, and the second write
    assert floor.cpu_floor_vs_pgbench == 7.5
    assert floor.cpu_target_ms == 4.8
    assert round(floor.left_for_our_code_ms, 3) == 0.3
    assert floor.capacity_target_rate == 375.0  # 15% of 2,500
    assert floor.cores_at_capacity_target == round(4.5 * 375 / 1000, 2)


def text_of(floor: Floor) -> str:
    console = Console(width=400, record=True)
    console.print(table(floor))
    return console.export_text()


def test_the_table_says_whether_the_floor_leaves_room_or_is_past_the_target() -> None:
    roomy = text_of(measured())
    assert "0.30 ms an order left for all of our code" in roomy
    assert "10% of pgbench left for all of our code" in roomy  # API: 50% against 40%
    assert "past the target by 20% of the raw producer before any code of ours" in roomy
    past = text_of(measured(kafka_ms=2.0))
    assert "past the target by 0.70 ms an order before any code of ours" in past


def test_the_floor_apps_statement_is_pgbenchs_with_its_variable_a_parameter() -> None:
    statement = create_statement()
    assert "%(customer)s::text" in statement
    assert ":customer" not in statement
    assert "\\set" not in statement and "--" not in statement.split("\n")[0]
    assert statement.lstrip().startswith("WITH new AS")
