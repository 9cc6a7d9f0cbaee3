"""What one bench run measured, as the JSON document `bench/results/latest.json` holds."""

from __future__ import annotations

import msgspec

from bench.api_load import LoadResult
from bench.baselines import DrainVsRaw, PgbenchResult
from bench.capacity import Capacity
from bench.cpu import CpuPerUnit
from bench.end_to_end import EndToEnd
from bench.headline import Headline
from bench.profile import ProfileSummary

RSS_MB = 150.0  # target: peak RSS of each process


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
    # The first key count once more with RELAY_FENCING=false: what fencing costs.
    relay_drain_unfenced: DrainVsRaw | None = None
    memory: dict[str, Memory]
    cpu_cores: dict[str, dict[str, float]]  # phase -> role -> cores used on average
    rss_mb_by_phase: dict[str, dict[str, float]] = msgspec.field(default_factory=dict)
    targets: list[Target] = msgspec.field(default_factory=list)
    profiles: list[ProfileSummary] = msgspec.field(default_factory=list)
