"""bench/results/latest.png, drawn from latest.json alone (`python -m bench --plot-only`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bench.report import E2E_P99_MS, RSS_MB, Results

API, BASE, OK, WARN = "#1f77b4", "#9e9e9e", "#2ca02c", "#d62728"


def draw(results: Results, path: Path) -> Path:
    fig, axes = plt.subplots(2, 3, figsize=(17, 9.5), constrained_layout=True)
    _closed_loop(axes[0][0], results)
    _open_loop(axes[0][1], results)
    _end_to_end(axes[0][2], results)
    _drain(axes[1][0], results)
    _memory(axes[1][1], results)
    _cpu(axes[1][2], results)
    machine = results.machine
    fig.suptitle(
        f"Orders bench {results.started_at[:16]} · {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores · PostgreSQL {machine.get('postgresql', '?')}, "
        f"Kafka {machine.get('kafka', '?')}",
        fontsize=12,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _closed_loop(ax: Axes, results: Results) -> None:
    runs = results.api_closed_loop
    pgbench = {r.concurrency: r for r in results.pgbench}
    x = np.arange(len(runs))
    api = [r.throughput for r in runs]
    base = [pgbench[r.concurrency].tps if r.concurrency in pgbench else 0 for r in runs]
    ax.bar(x - 0.2, api, 0.4, label="API (wrk)", color=API)
    ax.bar(x + 0.2, base, 0.4, label="pgbench, same SQL", color=BASE)
    for i, run in enumerate(runs):
        share = f"{api[i] / base[i]:.0%}" if base[i] else ""
        ax.annotate(
            f"{share}\np99 {run.p99_ms:.0f} ms",
            (i - 0.2, api[i]),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_xticks(x, [f"{r.concurrency} clients" for r in runs])
    ax.set_ylabel("orders (transactions) per second")
    ax.set_title("Closed loop: API vs pgbench")
    ax.legend(loc="upper left", fontsize=8)


def _open_loop(ax: Axes, results: Results) -> None:
    runs = results.api_open_loop
    rates = [r.offered_rate or 0 for r in runs]
    for name, values, style in (
        ("p50", [r.p50_ms for r in runs], "o-"),
        ("p95", [r.p95_ms for r in runs], "s--"),
        ("p99", [r.p99_ms for r in runs], "^:"),
    ):
        ax.plot(rates, values, style, label=f"API {name}")
    for r in runs:
        errors = sum(r.errors.values())
        if errors:
            ax.annotate(f"{errors} errors", (r.offered_rate or 0, r.p99_ms), fontsize=8, color=WARN)
    ax.set_yscale("log")
    ax.set_xlabel("offered orders per second (open loop)")
    ax.set_ylabel("API latency, ms (log)")
    ax.set_title("Open loop: API latency at fixed rates")
    ax.legend(fontsize=8)


def _end_to_end(ax: Axes, results: Results) -> None:
    percentiles = np.arange(101)
    for run in results.end_to_end:
        if run.cdf_ms:
            r = run.result
            ax.plot(
                run.cdf_ms,
                percentiles,
                label=f"{r.offered_rate}/s: p50 {r.p50_ms or 0:.0f}, p99 {r.p99_ms or 0:.0f} ms",
            )
    ax.axvline(E2E_P99_MS, color=WARN, linestyle="--", linewidth=1, label="target p99")
    ax.axhline(99, color=BASE, linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("API commit → consumer's status change, ms (log)")
    ax.set_ylabel("percentile")
    ax.set_title("End to end latency (from database timestamps)")
    ax.legend(fontsize=8, loc="lower right")


def _drain(ax: Axes, results: Results) -> None:
    names, values, colours = [], [], []
    if results.relay_drain:
        names.append(f"relay drain\n{results.relay_drain.rows:,} rows")
        values.append(results.relay_drain.events_per_s)
        colours.append(API)
    if results.raw_producer:
        names.append(f"raw producer\n{results.raw_producer.messages:,} msgs")
        values.append(results.raw_producer.events_per_s)
        colours.append(BASE)
    ax.bar(names, values, color=colours)
    for i, value in enumerate(values):
        ax.annotate(f"{value:,.0f}/s", (i, value), ha="center", va="bottom", fontsize=9)
    if len(values) == 2 and values[1]:
        ax.set_title(f"Outbox → Kafka: relay is {values[0] / values[1]:.0%} of the raw producer")
    else:
        ax.set_title("Outbox → Kafka")
    ax.set_ylabel("events per second")


def _memory(ax: Axes, results: Results) -> None:
    names: list[str] = []
    peaks: list[float] = []
    for role, memory in results.memory.items():
        each = sorted(memory.each_mb.values(), reverse=True)
        if role == "api" and len(each) > 1:  # granian: a worker (the largest) and its parent
            names += ["api worker", "api parent"]
            peaks += [each[0], each[-1]]
        elif each:
            names.append(role)
            peaks.append(each[0])
    ax.bar(names, peaks, color=[OK if p < RSS_MB else WARN for p in peaks])
    ax.axhline(RSS_MB, color=WARN, linestyle="--", linewidth=1, label=f"target {RSS_MB:.0f} MB")
    for i, peak in enumerate(peaks):
        ax.annotate(f"{peak:.0f} MB", (i, peak), ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("peak RSS, MB")
    ax.set_title("Peak memory of each process")
    ax.legend(fontsize=8)


def _cpu(ax: Axes, results: Results) -> None:
    phases = list(results.cpu_cores)
    roles = sorted({role for cores in results.cpu_cores.values() for role in cores})
    bottom = np.zeros(len(phases))
    for role in roles:
        values = np.array([results.cpu_cores[p].get(role, 0.0) for p in phases])
        ax.barh(phases, values, left=bottom, label=role)
        bottom += values
    ax.axvline(float(results.machine.get("cores", "2")), color=WARN, linestyle="--", linewidth=1)
    ax.set_xlabel("cores used on average")
    ax.set_title("Where the CPU went, per phase")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
