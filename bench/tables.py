"""The run's tables, one function each: (title, header, rows), for the terminal and Markdown."""

from __future__ import annotations

import math
from collections.abc import Callable

from bench.api_load import LoadResult
from bench.capacity import E2E_P99_MS
from bench.end_to_end import EndToEnd
from bench.results import Results

TableData = tuple[str, list[str], list[list[str]]]  # title, header, rows


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def cores(results: Results) -> str:
    """The cores the run could use, as it recorded them (bench.report.usable_cores)."""
    return results.machine.get("cores", "?")


def ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.1f}"


def _three(a: float | None, b: float | None, c: float | None) -> str:
    return f"{ms(a)} / {ms(b)} / {ms(c)}"


def _headline_table(results: Results) -> TableData | None:
    h = results.headline
    if h is None:
        return None
    cpu_run = results.cpu_per_order.what if results.cpu_per_order else "-"
    at = (h.e2e_p50_ms_at_capacity, h.e2e_p95_ms_at_capacity, h.e2e_p99_ms_at_capacity)
    rows = [
        ["sustained capacity", f"{h.sustained_capacity or 0:,.0f} orders/s"],
        [
            "end to end at capacity, p50 / p95 / p99",
            f"{_three(*at)} ms",
        ],
        ["pgbench, best tps", f"{h.pgbench_best_tps or 0:,.0f}"],
        ["capacity ÷ pgbench", _share(h.capacity_vs_pgbench, ".1%")],
        [f"CPU per order, all processes ({cpu_run})", _share(h.cpu_ms_per_order, ".2f", " ms")],
        ["pgbench's CPU per transaction", _share(h.pgbench_cpu_ms_per_transaction, ".2f", " ms")],
        ["CPU per order ÷ pgbench's", _share(h.cpu_per_order_vs_pgbench, ".1f", "x")],
        ["API ÷ pgbench (best of each)", _share(h.api_vs_pgbench, ".0%")],
        [
            f"relay ÷ raw producer (slowest: {h.relay_vs_raw_keys or 0:,} keys)",
            _share(h.relay_vs_raw, ".0%"),
        ],
    ]
    return ("Headline", ["figure", "value"], rows)


def _share(value: float | None, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def _search_table(results: Results) -> TableData | None:
    found = results.capacity
    if found is None:
        return None
    rows = [
        [str(i), f"{s.rate:,}", "held" if s.held else "failed", s.reason or "-"]
        for i, s in enumerate(found.steps, 1)
    ]
    title = (
        f"Capacity search ({found.step_seconds} s steps): sustained capacity "
        f"{found.rate or 0:,} orders/s (every request 201, every order confirmed, "
        f"end-to-end p99 ≤ {E2E_P99_MS:.0f} ms)"
    )
    return (title, ["step", "offered/s", "verdict", "why not"], rows)


def _open_loop_row(run: LoadResult, flow: EndToEnd | None) -> list[str]:
    return [
        f"{run.offered_rate:,.0f}",
        f"{run.send_rate or 0:,.0f}",
        f"{run.throughput:,.0f}",
        _three(run.p50_ms, run.p95_ms, run.p99_ms),
        f"{sum(run.errors.values())} / {run.requests:,}",
        _three(flow.p50_ms, flow.p95_ms, flow.p99_ms) if flow else "-",
        f"{ms(flow.relay_p50_ms)} / {ms(flow.relay_p99_ms)}" if flow else "-",
        f"{ms(flow.consumer_p50_ms)} / {ms(flow.consumer_p99_ms)}" if flow else "-",
        f"{flow.confirmed:,} / {flow.orders:,}" if flow else "-",
    ]


def _open_loop_table(results: Results) -> TableData:
    flows: list[EndToEnd | None] = [run.result for run in results.end_to_end]
    flows += [None] * (len(results.api_open_loop) - len(flows))
    rows = [
        _open_loop_row(run, flow) for run, flow in zip(results.api_open_loop, flows, strict=True)
    ]
    header = [
        "offered/s",
        "sent/s",
        "201/s",
        "API p50 / p95 / p99 ms",
        "errors / requests",
        "end-to-end p50 / p95 / p99 ms",
        "of which to published p50 / p99",
        "then to consumer p50 / p99",
        "confirmed",
    ]
    title = "API open loop (vegeta, constant rate) and end to end (commit → consumer's change)"
    return (title, header, rows)


def _closed_loop_table(results: Results) -> TableData:
    pgbench = {r.concurrency: r for r in results.pgbench}
    rows = []
    for run in results.api_closed_loop:
        base = pgbench.get(run.concurrency or 0)
        share = ratio(run.throughput, base.tps if base else None)
        rows.append(
            [
                str(run.concurrency),
                f"{run.throughput:,.0f}",
                _three(run.p50_ms, run.p95_ms, run.p99_ms),
                str(sum(run.errors.values())),
                f"{base.tps:,.0f}" if base else "-",
                f"{ms(base.p50_ms)} / {ms(base.p99_ms)}" if base else "-",
                _share(share, ".0%"),
            ]
        )
    header = [
        "clients",
        "API orders/s",
        "API p50 / p95 / p99 ms",
        "errors",
        "pgbench tps",
        "pgbench p50 / p99 ms",
        "API ÷ pgbench",
    ]
    return ("API closed loop (wrk) vs pgbench, same transaction, same concurrency", header, rows)


def _drain_table(results: Results) -> TableData | None:
    if not results.relay_drains:
        return None
    fenced = [(f"{pair.keys:,}", pair) for pair in results.relay_drains]
    unfenced = results.relay_drain_unfenced
    labelled = fenced + ([(f"{unfenced.keys:,}, fencing off", unfenced)] if unfenced else [])
    rows = [
        [
            label,
            f"{pair.drain.rows:,}",
            f"{pair.drain.events_per_s:,.0f}",
            f"{pair.raw.events_per_s:,.0f}",
            f"{pair.share:.0%}",
            f"{pair.drain.batch_cycle_ms:,.1f}",
            f"{pair.drain.wall_seconds:.1f}",
            str(pair.drain.failed_attempts),
        ]
        for label, pair in labelled
    ]
    header = [
        "keys",
        "events",
        "relay events/s",
        "raw producer events/s",
        "relay ÷ raw",
        "a batch marked every (ms, median)",
        "relay wall s (with start-up)",
        "failed attempts",
    ]
    batch = results.relay_drains[0].drain.batch_size
    title = f"Outbox → Kafka: relay drain (batches of {batch}) vs raw producer, same messages"
    return (title, header, rows)


def _cpu_per_order_table(results: Results) -> TableData | None:
    orders, base = results.cpu_per_order, results.pgbench_cpu
    if orders is None:
        return None
    theirs = base.ms_per_unit if base else {}
    rows = [
        [role, f"{ms:.3f}", f"{theirs[role]:.3f}" if role in theirs else "-"]
        for role, ms in orders.ms_per_unit.items()
    ]
    rows.append(["all", f"{orders.total_ms:.3f}", f"{base.total_ms:.3f}" if base else "-"])
    header = ["process", "CPU ms per order", "pgbench: CPU ms per transaction"]
    title = (
        f"CPU per order ({orders.what}) and per pgbench transaction ({base.what if base else '-'})"
    )
    return (title, header, rows)


def _memory_table(results: Results) -> TableData:
    rows = [
        [
            role,
            f"{memory.peak_mb:.0f}",
            ", ".join(f"{name}: {mb:.0f}" for name, mb in memory.each_mb.items()),
        ]
        for role, memory in results.memory.items()
    ]
    header = ["process", "all at once", "each process (its own peak; relay restarts are new pids)"]
    return ("Peak RSS (MB)", header, rows)


def _cpu_table(results: Results) -> TableData | None:
    if not results.cpu_cores:
        return None
    roles = sorted({role for used in results.cpu_cores.values() for role in used})
    memory_roles = ("api", "relay", "consumer")
    rows = []
    for phase, used in results.cpu_cores.items():
        peaks = results.rss_mb_by_phase.get(phase, {})
        rows.append(
            [
                phase,
                *[f"{used.get(role, 0):.2f}" for role in roles],
                *[f"{peaks[role]:.0f}" if role in peaks else "-" for role in memory_roles],
            ]
        )
    header = ["phase", *roles, *[f"{role} MB" for role in memory_roles]]
    title = f"CPU (cores used, of {cores(results)}) and peak RSS (MB) per phase"
    return (title, header, rows)


def _targets_table(results: Results) -> TableData:
    rows = [[t.name, t.target, t.value, "PASS" if t.met else "MISS"] for t in results.targets]
    return ("Targets", ["figure", "target", "measured", ""], rows)


TABLES: tuple[Callable[[Results], TableData | None], ...] = (
    _headline_table,
    _targets_table,
    _search_table,
    _open_loop_table,
    _cpu_per_order_table,
    _closed_loop_table,
    _drain_table,
    _memory_table,
    _cpu_table,
)


def tables(results: Results) -> list[TableData]:
    """Every table as (title, header, rows): rendered for the terminal and as Markdown."""
    return [table for make in TABLES if (table := make(results)) is not None]
