"""The run's results: one JSON document, the tables for the terminal, the same as Markdown."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import msgspec
import psutil  # type: ignore[import-untyped]
from rich.console import Console
from rich.table import Table

from bench.headline import (
    API_VS_PGBENCH,
    CAPACITY_VS_PGBENCH,
    CPU_VS_PGBENCH,
    RELAY_VS_RAW,
    Headline,
)
from bench.results import RSS_MB, Results, Target
from bench.tables import ms, tables


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (where a container's or
    taskset's limit shows), else every core the machine has."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
        "cores": str(usable_cores()),
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": server_version,
        "kafka": kafka_version,
        "librdkafka": confluent_kafka.libversion()[0],
        "granian": granian.__version__,
        "load_average_at_start": f"{load1:.2f} (1 min), {load5:.2f} (5 min)",
    }


def _pipeline_targets(h: Headline) -> list[Target]:
    found: list[Target] = []
    if h.capacity_vs_pgbench is not None and h.sustained_capacity is not None:
        found.append(
            Target(
                "sustained capacity ÷ pgbench's best tps",
                f"≥ {CAPACITY_VS_PGBENCH:.0%}",
                f"{h.capacity_vs_pgbench:.1%} ({h.sustained_capacity:,.0f} vs "
                f"{h.pgbench_best_tps or 0:,.0f}/s; end-to-end p99 "
                f"{ms(h.e2e_p99_ms_at_capacity)} ms)",
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
