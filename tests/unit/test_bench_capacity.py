"""The capacity search's decisions (bench/capacity.py): which rate next, when to stop, what
counts as capacity, and what makes a step fail. Pure: no stack is started."""

from __future__ import annotations

import pytest

from bench.api_load import LoadResult
from bench.capacity import Plan, Step, bracket, capacity, judge, next_rate
from bench.end_to_end import EndToEnd

PLAN = Plan(start=100, factor=2.0, resolution=0.1, max_steps=8, min_rate=5, max_rate=20_000)


def run_search(limit: int, plan: Plan = PLAN) -> list[Step]:
    """Drive the search against a pipeline that holds exactly the rates ≤ `limit`."""
    steps: list[Step] = []
    while (rate := next_rate(steps, plan)) is not None:
        assert rate not in {s.rate for s in steps}, "a rate is never tried twice"
        steps.append(Step(rate, rate <= limit))
    return steps


def test_first_step_is_the_start_rate() -> None:
    assert next_rate([], PLAN) == 100


def test_grows_geometrically_while_every_step_holds() -> None:
    assert next_rate([Step(100, True)], PLAN) == 200
    assert next_rate([Step(100, True), Step(200, True)], PLAN) == 400


def test_bisects_between_the_highest_hold_and_the_lowest_failure() -> None:
    assert next_rate([Step(100, True), Step(200, True), Step(400, False)], PLAN) == 300
    steps = [Step(100, True), Step(200, True), Step(400, False), Step(300, False)]
    assert next_rate(steps, PLAN) == 250


def test_shrinks_when_the_first_step_fails_and_gives_up_below_the_minimum() -> None:
    assert next_rate([Step(100, False)], PLAN) == 50
    failing = [Step(r, False) for r in (100, 50, 25, 12, 6)]
    assert next_rate(failing, PLAN) is None  # 3/s would be below min_rate
    assert capacity(failing) is None


def test_stops_when_the_bracket_is_within_the_resolution() -> None:
    steps = [Step(200, True), Step(220, False)]  # 20 ≤ 10% of 200
    assert next_rate(steps, PLAN) is None
    assert next_rate([Step(200, True), Step(221, False)], PLAN) == 210


def test_never_runs_more_than_max_steps() -> None:
    plan = Plan(start=10, max_steps=3)
    steps = run_search(limit=10_000, plan=plan)
    assert [s.rate for s in steps] == [10, 20, 40]
    assert capacity(steps) == 40


def test_stops_growing_at_the_maximum_rate() -> None:
    plan = Plan(start=100, max_rate=150, max_steps=20)
    steps = run_search(limit=10_000, plan=plan)
    assert [s.rate for s in steps] == [100, 150]


@pytest.mark.parametrize("limit", [7, 60, 100, 233, 399, 1_000, 5_000])
def test_finds_the_limit_within_the_resolution(limit: int) -> None:
    steps = run_search(limit, Plan(start=100, max_steps=20))
    found = capacity(steps)
    assert found is not None
    assert found <= limit
    assert limit - found <= max(1, 0.1 * found)


def test_a_hold_above_a_failure_does_not_count() -> None:
    """Noise: 300 held after 250 failed; capacity stays below the failure."""
    steps = [Step(200, True), Step(400, False), Step(250, False), Step(300, True)]
    assert bracket(steps) == (200, 250)
    assert capacity(steps) == 200
    assert next_rate(steps, PLAN) == 225


def load(requests: int, ok: int) -> LoadResult:
    return LoadResult(
        mode="open", concurrency=None, offered_rate=100, seconds=10, requests=requests, ok=ok,
        errors={"503": requests - ok} if requests > ok else {}, throughput=ok / 10,
        p50_ms=5, p95_ms=9, p99_ms=12, max_ms=20,
    )  # fmt: skip


def flow(orders: int, confirmed: int, p99: float | None) -> EndToEnd:
    return EndToEnd(
        offered_rate=100, seconds=10, orders=orders, confirmed=confirmed, p50_ms=10,
        p95_ms=20, p99_ms=p99, max_ms=p99, relay_p50_ms=5, relay_p99_ms=9,
        consumer_p50_ms=3, consumer_p99_ms=7,
    )  # fmt: skip


def test_a_step_holds_when_everything_succeeds_within_the_p99() -> None:
    assert judge(load(1000, 1000), flow(1000, 1000, 100.0)) == ""


@pytest.mark.parametrize(
    ("result", "outcome", "why"),
    [
        (load(900, 900), flow(900, 900, 50.0), "sent only 900 of 1,000"),
        (load(1000, 999), flow(999, 999, 50.0), "1 of 1,000 requests failed"),
        (load(1000, 1000), flow(1000, 999, 50.0), "999 of 1,000 orders confirmed"),
        (load(1000, 1000), flow(998, 998, 50.0), "998 of 1,000 orders confirmed"),
        (load(1000, 1000), flow(1000, 1000, 100.1), "p99 100.1 ms > 100 ms"),
        (load(1000, 1000), flow(1000, 0, None), "0 of 1,000 orders confirmed"),
    ],
)
def test_a_step_fails_for_each_unmet_condition(
    result: LoadResult, outcome: EndToEnd, why: str
) -> None:
    assert why in judge(result, outcome)
