"""bench/results/latest.png, drawn from latest.json alone (`python -m bench --plot-only`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from bench.capacity import E2E_P99_MS
from bench.results import RSS_MB, Results
from bench.tables import cores

API, BASE, OK, WARN = "#1f77b4", "#9e9e9e", "#2ca02c", "#d62728"
# One colour per process role, the same in every panel.
ROLE_COLOURS = {
    "api": "#1f77b4",
    "postgres": "#9467bd",
    "kafka": "#2ca02c",
    "relay": "#8c564b",
    "consumer": "#ff7f0e",
    "load": "#d62728",
    "bench": "#e377c2",
    "other": "#c7c7c7",
}


def draw(results: Results, path: Path) -> Path:
    fig, axes = plt.subplots(2, 4, figsize=(22, 9.5), constrained_layout=True)
    _closed_loop(axes[0][0], results)
    _search(axes[0][1], results)
    _end_to_end(axes[0][2], results)
    _headline(axes[0][3], results)
    _drain(axes[1][0], results)
    _cpu_per_order(axes[1][1], results)
    _memory(axes[1][2], results)
    _cpu(axes[1][3], results)
    machine = results.machine
    fig.suptitle(
        f"Orders bench {results.started_at[:16]} · {machine.get('cpu', '?')}, "
        f"{cores(results)} cores · PostgreSQL {machine.get('postgresql', '?')}, "
        f"Kafka {machine.get('kafka', '?')}",
        fontsize=12,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _headline(ax: Axes, results: Results) -> None:
    """The headline figures as text: what a reader should see first."""
    ax.axis("off")
    ax.set_title("Headline")
    h = results.headline
    if h is None:
        ax.text(0.02, 0.9, "no headline in this run (schema 1)", fontsize=11, va="top")
        return
    lines = [
        f"sustained capacity: {h.sustained_capacity or 0:,.0f} orders/s",
        f"  = {h.capacity_vs_pgbench or 0:.1%} of pgbench's {h.pgbench_best_tps or 0:,.0f} tps",
        f"  end to end p50 / p95 / p99: {h.e2e_p50_ms_at_capacity or 0:.0f} / "
        f"{h.e2e_p95_ms_at_capacity or 0:.0f} / {h.e2e_p99_ms_at_capacity or 0:.0f} ms",
        f"CPU per order: {h.cpu_ms_per_order or 0:.2f} ms "
        f"= {h.cpu_per_order_vs_pgbench or 0:.1f}x pgbench's "
        f"{h.pgbench_cpu_ms_per_transaction or 0:.2f} ms",
        f"API ÷ pgbench: {h.api_vs_pgbench or 0:.0%}",
        f"relay ÷ raw producer: {h.relay_vs_raw or 0:.0%} (slowest: "
        f"{h.relay_vs_raw_keys or 0:,} keys)",
    ]
    ax.text(0.02, 0.95, "\n".join(lines), fontsize=11, va="top", family="monospace")


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


def _search(ax: Axes, results: Results) -> None:
    """Each step of the capacity search: its rate, its end-to-end p99, held or failed."""
    found = results.capacity
    if found is not None:  # the first runs in `end_to_end` are the steps, in order
        p99 = {
            s.rate: r.result.p99_ms for s, r in zip(found.steps, results.end_to_end, strict=False)
        }
        for held, colour, label in ((True, OK, "held"), (False, WARN, "failed")):
            steps = [s for s in found.steps if s.held is held]
            ax.scatter(
                [s.rate for s in steps],
                [p99.get(s.rate) or 0.1 for s in steps],
                color=colour,
                label=label,
                zorder=3,
            )
        for i, s in enumerate(found.steps, 1):
            ax.annotate(
                str(i),
                (s.rate, p99.get(s.rate) or 0.1),
                fontsize=8,
                xytext=(4, 4),
                textcoords="offset points",
            )
        if found.rate:
            ax.axvline(found.rate, color=OK, linestyle=":", label=f"capacity {found.rate}/s")
    ax.axhline(E2E_P99_MS, color=WARN, linestyle="--", linewidth=1, label="target p99")
    ax.set_yscale("log")
    ax.set_xlabel("offered orders per second (open loop; numbers: step order)")
    ax.set_ylabel("end-to-end p99, ms (log)")
    ax.set_title("Capacity search: steps over offered rates")
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
    pairs = results.relay_drains
    x = np.arange(len(pairs))
    relay = [p.drain.events_per_s for p in pairs]
    raw = [p.raw.events_per_s for p in pairs]
    ax.bar(x - 0.2, relay, 0.4, label="relay drain", color=API)
    ax.bar(x + 0.2, raw, 0.4, label="raw producer, same messages", color=BASE)
    for i, pair in enumerate(pairs):
        ax.annotate(f"{pair.share:.0%}", (i - 0.2, relay[i]), ha="center", va="bottom", fontsize=9)
    ax.set_xticks(x, [f"{p.keys:,} keys" for p in pairs])
    slowest = min(pairs, key=lambda p: p.share, default=None)
    worst = f": slowest {slowest.share:.0%} at {slowest.keys:,} keys" if slowest else ""
    ax.set_title(f"Relay drain ÷ raw producer{worst}")
    ax.set_ylabel("events per second")
    if pairs:
        ax.legend(fontsize=8)


def _cpu_per_order(ax: Axes, results: Results) -> None:
    """CPU ms per order per process, stacked, beside pgbench's per transaction."""
    bars = [c for c in (results.cpu_per_order, results.pgbench_cpu) if c is not None]
    roles = sorted({role for c in bars for role in c.ms_per_unit})
    left = np.zeros(len(bars))
    for role in roles:
        values = np.array([c.ms_per_unit.get(role, 0.0) for c in bars])
        ax.barh([c.what for c in bars], values, left=left, label=role, color=ROLE_COLOURS.get(role))
        left += values
    for i, c in enumerate(bars):
        ax.annotate(f"{c.total_ms:.2f} ms", (c.total_ms, i), va="center", fontsize=9)
    if not bars:
        ax.set_title("CPU per order: not measured in this run")
        return
    ax.set_xlabel("CPU ms per order (pgbench: per transaction)")
    ax.set_title("CPU per order, per process")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")


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
        ax.barh(phases, values, left=bottom, label=role, color=ROLE_COLOURS.get(role))
        bottom += values
    ax.axvline(
        float(results.machine.get("cores") or "nan"), color=WARN, linestyle="--", linewidth=1
    )
    ax.set_xlabel("cores used on average")
    ax.set_title("Where the CPU went, per phase")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="lower right")
