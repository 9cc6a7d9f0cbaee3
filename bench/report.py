"""The run's results: one JSON document, a table for the terminal, the same as Markdown."""

from __future__ import annotations

import math
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import msgspec
import psutil  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from bench.api_load import LoadResult
from bench.baselines import PgbenchResult, ProducerResult
from bench.end_to_end import EndToEnd
from bench.profile import ProfileSummary
from bench.relay_drain import Drain

API_VS_PGBENCH = 0.40
RELAY_VS_RAW = 0.50
E2E_P99_MS = 100.0
E2E_RATE = 200
RSS_MB = 150.0


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
    schema: int = 1
    started_at: str
    seconds: float
    machine: dict[str, str]
    settings: dict[str, object]
    api_closed_loop: list[LoadResult]
    pgbench: list[PgbenchResult]
    api_open_loop: list[LoadResult]
    end_to_end: list[EndToEndRun]
    relay_drain: Drain | None
    relay_drain_unfenced: Drain | None = None  # RELAY_FENCING=false: what fencing costs
    raw_producer: ProducerResult | None
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


def targets(results: Results) -> list[Target]:
    found: list[Target] = []
    api = max((r.throughput for r in results.api_closed_loop), default=None)
    pg = max((r.tps for r in results.pgbench), default=None)
    share = ratio(api, pg)
    if share is not None:
        found.append(
            Target(
                "API ÷ pgbench (best throughput of each)",
                f"≥ {API_VS_PGBENCH:.0%}",
                f"{share:.0%} ({api:,.0f} vs {pg:,.0f}/s)",
                share >= API_VS_PGBENCH,
            )
        )
    if results.relay_drain and results.raw_producer:
        share = results.relay_drain.events_per_s / results.raw_producer.events_per_s
        found.append(
            Target(
                "relay drain ÷ raw producer",
                f"≥ {RELAY_VS_RAW:.0%}",
                f"{share:.0%} ({results.relay_drain.events_per_s:,.0f} vs "
                f"{results.raw_producer.events_per_s:,.0f} events/s)",
                share >= RELAY_VS_RAW,
            )
        )
    if results.relay_drain and results.relay_drain_unfenced:
        fenced, unfenced = results.relay_drain, results.relay_drain_unfenced
        found.append(
            Target(
                "relay drain with fencing ÷ without (what fencing costs)",
                "report",
                f"{fenced.events_per_s / unfenced.events_per_s:.0%} "
                f"({fenced.events_per_s:,.0f} vs {unfenced.events_per_s:,.0f} events/s)",
                True,
            )
        )
    e2e = next(
        (run.result for run in results.end_to_end if run.result.offered_rate == E2E_RATE), None
    )
    if e2e is not None:
        complete = e2e.confirmed == e2e.orders > 0
        found.append(
            Target(
                f"end to end p99 at {E2E_RATE}/s",
                f"≤ {E2E_P99_MS:.0f} ms",
                f"{_ms(e2e.p99_ms)} ms ({e2e.confirmed:,}/{e2e.orders:,} confirmed)",
                complete and e2e.p99_ms is not None and e2e.p99_ms <= E2E_P99_MS,
            )
        )
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


def _ms(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.1f}"


def tables(results: Results) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every table as (title, header, rows): rendered for the terminal and as Markdown."""
    out: list[tuple[str, list[str], list[list[str]]]] = []
    pgbench = {r.concurrency: r for r in results.pgbench}
    rows = []
    for run in results.api_closed_loop:
        base = pgbench.get(run.concurrency or 0)
        share = ratio(run.throughput, base.tps if base else None)
        rows.append(
            [
                str(run.concurrency),
                f"{run.throughput:,.0f}",
                f"{_ms(run.p50_ms)} / {_ms(run.p95_ms)} / {_ms(run.p99_ms)}",
                str(sum(run.errors.values())),
                f"{base.tps:,.0f}" if base else "-",
                f"{_ms(base.p50_ms)} / {_ms(base.p99_ms)}" if base else "-",
                f"{share:.0%}" if share is not None else "-",
            ]
        )
    out.append(
        (
            "API closed loop (wrk) vs pgbench, same transaction, same concurrency",
            [
                "clients",
                "API orders/s",
                "API p50 / p95 / p99 ms",
                "errors",
                "pgbench tps",
                "pgbench p50 / p99 ms",
                "API ÷ pgbench",
            ],
            rows,
        )
    )
    e2e = {run.result.offered_rate: run.result for run in results.end_to_end}
    rows = []
    for run in results.api_open_loop:
        flow = e2e.get(int(run.offered_rate or 0))
        rows.append(
            [
                f"{run.offered_rate:,.0f}",
                f"{run.send_rate or 0:,.0f}",
                f"{run.throughput:,.0f}",
                f"{_ms(run.p50_ms)} / {_ms(run.p95_ms)} / {_ms(run.p99_ms)}",
                f"{sum(run.errors.values())} / {run.requests:,}",
                f"{_ms(flow.p50_ms)} / {_ms(flow.p95_ms)} / {_ms(flow.p99_ms)}" if flow else "-",
                f"{_ms(flow.relay_p50_ms)} / {_ms(flow.relay_p99_ms)}" if flow else "-",
                f"{_ms(flow.consumer_p50_ms)} / {_ms(flow.consumer_p99_ms)}" if flow else "-",
                f"{flow.confirmed:,} / {flow.orders:,}" if flow else "-",
            ]
        )
    out.append(
        (
            "API open loop (vegeta, constant rate) and end to end (commit → consumer's change)",
            [
                "offered/s",
                "sent/s",
                "201/s",
                "API p50 / p95 / p99 ms",
                "errors / requests",
                "end-to-end p50 / p95 / p99 ms",
                "of which to published p50 / p99",
                "then to consumer p50 / p99",
                "confirmed",
            ],
            rows,
        )
    )
    rows = []
    if results.relay_drain:
        d = results.relay_drain
        rows.append(
            [
                "relay drain",
                f"{d.rows:,}",
                f"{d.seconds:.1f}",
                f"{d.events_per_s:,.0f}",
                f"batches of {d.batch_size}, one marked every {d.batch_cycle_ms:.1f} ms "
                f"(median); wall {d.wall_seconds:.1f} s with start-up; "
                f"failed attempts {d.failed_attempts}",
            ]
        )
    if results.relay_drain_unfenced:
        d = results.relay_drain_unfenced
        rows.append(
            [
                "relay drain, RELAY_FENCING=false",
                f"{d.rows:,}",
                f"{d.seconds:.1f}",
                f"{d.events_per_s:,.0f}",
                f"one idempotent producer, pipelined; one marked every {d.batch_cycle_ms:.1f} ms",
            ]
        )
    if results.raw_producer:
        p = results.raw_producer
        rows.append(
            [
                "raw producer",
                f"{p.messages:,}",
                f"{p.seconds:.1f}",
                f"{p.events_per_s:,.0f}",
                "confluent-kafka, the relay's config",
            ]
        )
    out.append(("Outbox → Kafka", ["what", "events", "seconds", "events/s", "note"], rows))
    rows = [
        [
            role,
            f"{memory.peak_mb:.0f}",
            ", ".join(f"{name}: {mb:.0f}" for name, mb in memory.each_mb.items()),
        ]
        for role, memory in results.memory.items()
    ]
    out.append(
        (
            "Peak RSS (MB)",
            ["process", "all at once", "each process (its own peak; relay restarts are new pids)"],
            rows,
        )
    )
    if results.cpu_cores:
        roles = sorted({role for cores in results.cpu_cores.values() for role in cores})
        memory_roles = ("api", "relay", "consumer")
        rows = []
        for phase, cores in results.cpu_cores.items():
            peaks = results.rss_mb_by_phase.get(phase, {})
            rows.append(
                [
                    phase,
                    *[f"{cores.get(role, 0):.2f}" for role in roles],
                    *[f"{peaks[role]:.0f}" if role in peaks else "-" for role in memory_roles],
                ]
            )
        header = ["phase", *roles, *[f"{role} MB" for role in memory_roles]]
        out.append(("CPU (cores used, of 2) and peak RSS (MB) per phase", header, rows))
    rows = [[t.name, t.target, t.value, "PASS" if t.met else "MISS"] for t in results.targets]
    out.append(("Targets", ["figure", "target", "measured", ""], rows))
    return out


def render(console: Console, results: Results) -> None:
    for title, header, rows in tables(results):
        table = Table(title=title, title_justify="left", header_style="bold")
        for name in header:
            table.add_column(
                name, justify="left" if name in ("what", "figure", "phase") else "right"
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
