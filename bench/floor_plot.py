"""bench/results/floor.png: the floor beside the service (`make bench`'s latest) and the targets.

Each run's CPU per order is drawn as a multiple of its own pgbench's CPU per transaction, so
two runs on a machine whose speed moves still compare; the ratios are drawn as they are.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.floor_figures import Floor
from bench.headline import API_VS_PGBENCH, CPU_VS_PGBENCH, RELAY_VS_RAW
from bench.plot import BASE, OK, ROLE_COLOURS, WARN
from bench.results import Results

FLOOR = "none of our code, {rate}/s\n(api: Litestar, granian, psycopg;\nrelay: bare Kafka clients)"


def draw(floor: Floor, ours: Results | None, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(16, 5.5), constrained_layout=True)
    _cpu(left, floor, ours)
    _ratios(right, floor, ours)
    fig.suptitle("What the parts cost with none of our code (make floor), beside the service")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _cpu(ax: Axes, floor: Floor, ours: Results | None) -> None:
    cheapest = min(floor.passes, key=lambda p: p.cpu.total_ms)
    floor_roles = dict(cheapest.cpu.ms_per_unit)
    floor_roles["postgres"] = floor_roles.get("postgres", 0.0) + floor.second_write_ms
    bars = [(FLOOR.format(rate=cheapest.rate), floor_roles, floor.pgbench_cpu_ms)]
    if ours is not None and ours.cpu_per_order is not None and ours.pgbench_cpu is not None:
        service = ours.cpu_per_order
        bars.append(
            (f"the service, {service.what}", service.ms_per_unit, ours.pgbench_cpu.total_ms)
        )
    for row, (label, roles, base) in enumerate(bars):
        left = 0.0
        for role, ms in sorted(roles.items()):
            width = ms / base
            ax.barh(label, width, left=left, color=ROLE_COLOURS.get(role), label=role)
            left += width
        ax.annotate(f" {left:.1f}x", (left, row), va="center", fontsize=9)
    ax.axvline(CPU_VS_PGBENCH, color=WARN, linestyle="--", label=f"target ≤ {CPU_VS_PGBENCH:g}x")
    ax.set_xlabel("CPU per order, a multiple of the same run's pgbench CPU per transaction")
    ax.set_title("CPU per order by process")
    ax.invert_yaxis()
    ax.set_xlim(0, max(CPU_VS_PGBENCH, *(sum(r.values()) / b for _, r, b in bars)) * 1.15)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # a role once, though in both bars
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper right")


def _ratios(ax: Axes, floor: Floor, ours: Results | None) -> None:
    names = ["API ÷ pgbench", "relay drain ÷ raw producer"]
    ceilings = [floor.api_ceiling_vs_pgbench, floor.relay_ceiling_vs_raw]
    targets = [API_VS_PGBENCH, RELAY_VS_RAW]
    service = [ours.headline.api_vs_pgbench, ours.headline.relay_vs_raw] if ours else [None] * 2
    for i, (ceiling, target, value) in enumerate(zip(ceilings, targets, service, strict=True)):
        ax.bar(i - 0.2, ceiling, 0.4, color=OK if ceiling >= target else WARN, label=None)
        ax.annotate(f"{ceiling:.0%}\nceiling", (i - 0.2, ceiling), ha="center", va="bottom")
        if value is not None:
            ax.bar(i + 0.2, value, 0.4, color=BASE)
            ax.annotate(f"{value:.0%}\nthe service", (i + 0.2, value), ha="center", va="bottom")
        ax.hlines(target, i - 0.45, i + 0.45, colors=WARN, linestyles="--")
        ax.annotate(f"target {target:.0%}", (i + 0.45, target), va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction")
    ax.set_title("Ceilings with none of our code (green: above the target, red: below)")
