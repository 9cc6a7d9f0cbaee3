"""The run's results: one JSON document, a table for the terminal, the same as Markdown."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import psutil  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from bench.api_load import LoadResult
from bench.baselines import DrainVsRaw, PgbenchResult
from bench.capacity import E2E_P99_MS, Capacity
from bench.cpu import CpuPerUnit
from bench.end_to_end import EndToEnd
from bench.headline import (
    API_VS_PGBENCH,
    CAPACITY_VS_PGBENCH,
    CPU_VS_PGBENCH,
    RELAY_VS_RAW,
    Headline,
)
from bench.profile import ProfileSummary

RSS_MB = 150.0
TableData = tuple[str, list[str], list[list[str]]]  # title, header, rows


class Memory(msgspec.Struct):
    peak_mb: float  # the role's processes together, at their highest
    each_mb: dict[str, float]  # each process at its own highest


class EndToEndRun(msgspec.Struct):
    result: EndToEnd
    cdf_ms: list[float]  # the latency at each percentile 0, 1, … 100


class Target(msgspec.Struct):
    name: str
    target: str
    value: str
    met: bool


class Results(msgspec.Struct, kw_only=True):
    """Schema 2: capacity search, CPU per order, drains per key count and the headline.
    (Schema 1 files still load: their old fields are ignored, the new ones are empty.)"""

    schema: int = 2
    started_at: str
    seconds: float
    machine: dict[str, str]
    settings: dict[str, object]
    headline: Headline | None = None
    api_closed_loop: list[LoadResult]
    pgbench: list[PgbenchResult]
    api_open_loop: list[LoadResult]  # the search's steps, then the CPU-per-order run
    end_to_end: list[EndToEndRun]  # one per open-loop run, in the same order
    capacity: Capacity | None = None
    cpu_per_order: CpuPerUnit | None = None
    pgbench_cpu: CpuPerUnit | None = None  # pgbench's best run, per transaction
    relay_drains: list[DrainVsRaw] = msgspec.field(default_factory=list)
    memory: dict[str, Memory]
    cpu_cores: dict[str, dict[str, float]]  # phase -> role -> cores used on average
    rss_mb_by_phase: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    targets: list[Target] = msgspec.field(default_factory=list)
    profiles: list[ProfileSummary] = msgspec.field(default_factory=list)


def machine(server_version: str, kafka_version: str) -> dict[str, str]:
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next(
        (ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")),
        platform.processor() or "?",
    )
    import confluent_kafka  # noqa: PLC0415 - only for its version
    import granian  # noqa: PLC0415

    load1, load5, _ = os.getloadavg()
    return {
        "cpu": model,
        "cores": str(os.cpu_count()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": server_version,
        "kafka": kafka_version,
        "librdkafka": confluent_kafka.libversion()[0],
        "granian": granian.__version__,
        "load_average_at_start": f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
    }


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or not base:
        return None
    return value / base


def cores(results: Results) -> str:
    """The machine's core count as the run recorded it (os.cpu_count() at the time)."""
    return results.machine.get("cores", "?")


def _pipeline_targets(h: Headline) -> list[Target]:
    found: list[Target] = []
    if h.capacity_vs_pgbench is not None and h.sustained_capacity is not None:
        found.append(
            Target(
                "sustained capacity ÷ pgbench's best tps",
                f"≥ {CAPACITY_VS_PGBENCH:.0%}",
                f"{h.capacity_vs_pgbench:.1%} ({h.sustained_capacity:,.0f} vs "
                f"{h.pgbench_best_tps or 0:,.0f}/s; end-to-end p99 "
                f"{_ms(h.e2e_p99_ms_at_capacity)} ms)",
                h.capacity_vs_pgbench >= CAPACITY_VS_PGBENCH,
            )
        )
    if h.cpu_per_order_vs_pgbench is not None:
        found.append(
            Target(
                "CPU per order ÷ pgbench's per transaction",
                f"≤ {CPU_VS_PGBENCH:.0f}x",
                f"{h.cpu_per_order_vs_pgbench:.1f}x ({h.cpu_ms_per_order:.2f} vs "
                f"{h.pgbench_cpu_ms_per_transaction:.2f} ms)",
                h.cpu_per_order_vs_pgbench <= CPU_VS_PGBENCH,
            )
        )
    return found


def _component_targets(h: Headline) -> list[Target]:
    found: list[Target] = []
    if h.api_vs_pgbench is not None:
        found.append(
            Target(
                "API ÷ pgbench (best throughput of each)",
                f"≥ {API_VS_PGBENCH:.0%}",
                f"{h.api_vs_pgbench:.0%}",
                h.api_vs_pgbench >= API_VS_PGBENCH,
            )
        )
    if h.relay_vs_raw is not None:
        found.append(
            Target(
                "relay drain ÷ raw producer, slowest key count",
                f"≥ {RELAY_VS_RAW:.0%}",
                f"{h.relay_vs_raw:.0%} (at {h.relay_vs_raw_keys:,} keys)",
                h.relay_vs_raw >= RELAY_VS_RAW,
            )
        )
    return found


def _memory_targets(results: Results) -> list[Target]:
    found: list[Target] = []
    for role, memory in results.memory.items():
        largest = max(memory.each_mb.values(), default=0.0)
        together = (
            f" (all its processes at once: {memory.peak_mb:.0f} MB)"
            if memory.peak_mb > largest + 1
            else ""
        )
        found.append(
            Target(
                f"peak RSS, {role}",
                f"< {RSS_MB:.0f} MB each process",
                f"{largest:.0f} MB{together}",
                largest < RSS_MB,
            )
        )
    return found


def targets(results: Results) -> list[Target]:
    h = results.headline
    pipeline = [*_pipeline_targets(h), *_component_targets(h)] if h else []
    return [*pipeline, *_memory_targets(results)]


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.1f}"


def _three(a: float | None, b: float | None, c: float | None) -> str:
    return f"{_ms(a)} / {_ms(b)} / {_ms(c)}"


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
        f"{_ms(flow.relay_p50_ms)} / {_ms(flow.relay_p99_ms)}" if flow else "-",
        f"{_ms(flow.consumer_p50_ms)} / {_ms(flow.consumer_p99_ms)}" if flow else "-",
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
                f"{_ms(base.p50_ms)} / {_ms(base.p99_ms)}" if base else "-",
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
    rows = [
        [
            f"{pair.keys:,}",
            f"{pair.drain.rows:,}",
            f"{pair.drain.events_per_s:,.0f}",
            f"{pair.raw.events_per_s:,.0f}",
            f"{pair.share:.0%}",
            f"{pair.drain.batch_cycle_ms:,.1f}",
            f"{pair.drain.wall_seconds:.1f}",
            str(pair.drain.failed_attempts),
        ]
        for pair in results.relay_drains
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


def render(console: Console, results: Results) -> None:
    for title, header, rows in tables(results):
        table = Table(title=title, title_justify="left", header_style="bold")
        for name in header:
            table.add_column(
                name,
                justify="left" if name in ("what", "figure", "phase", "why not") else "right",
            )
        for row in rows:
            styled = [
                f"[green]{cell}" if cell == "PASS" else f"[red]{cell}" if cell == "MISS" else cell
                for cell in row
            ]
            table.add_row(*styled)
        console.print(table)


def describe(results: Results) -> list[str]:
    """Where and how the run happened, in two lines."""
    m = results.machine
    knobs = ", ".join(f"{k}={v}" for k, v in results.settings.items() if k.isupper())
    return [
        f"{results.started_at}, {results.seconds:.0f} s: {m.get('cpu')}, {m.get('cores')} cores, "
        f"{m.get('memory')}, {m.get('os')}; PostgreSQL {m.get('postgresql')} (fsync on), "
        f"Kafka {m.get('kafka')}, librdkafka {m.get('librdkafka')}, Python {m.get('python')}, "
        f"granian {m.get('granian')}; load average at start {m.get('load_average_at_start')}",
        f"Settings: {knobs}",
    ]


def markdown(results: Results) -> str:
    lines = [*describe(results)[:1], "", *describe(results)[1:], ""]
    for title, header, rows in tables(results):
        lines += [f"**{title}**", "", _md_row(header), _md_row(["---"] * len(header))]
        lines += [_md_row(row) for row in rows]
        lines.append("")
    for summary in results.profiles:
        lines += [
            f"**py-spy, {summary.process}**: {summary.samples} samples, the GIL held "
            f"{summary.gil_busy_percent:.0f}% of the time",
            "",
            "By library (leaf frame): "
            + ", ".join(f"{s.what} {s.percent:.0f}%" for s in summary.by_package[:8]),
            "",
            _md_row(["self time", "function"]),
            _md_row(["---", "---"]),
            *[_md_row([f"{s.percent:.1f}%", s.what]) for s in summary.self_time[:10]],
            "",
        ]
    return "\n".join(lines)


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def write(results: Results, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "latest.json"
    temporary = path.with_suffix(".json.tmp")
    temporary.write_bytes(msgspec.json.format(msgspec.json.encode(results), indent=2) + b"\n")
    temporary.replace(path)
    (directory / "latest.md").write_text(markdown(results))
    return path


def load(path: Path) -> Results:
    return msgspec.json.decode(path.read_bytes(), type=Results)
