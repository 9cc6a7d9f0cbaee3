"""Resident memory (peak) and CPU time of each process, sampled in a thread for the whole run.

A role is a process tree: `api` is the granian parent and its workers (their RSS is summed,
and each is reported too), `postgres` is the postmaster and its backends, `load` is the load
tools the bench runs (wrk, vegeta, pgbench), `bench` is the bench's own process (this sampler,
its progress bars and database polling: the cost of measuring, kept apart from the load).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]

MB = 1024 * 1024
MACHINE = "machine"
OTHER = "other"  # the machine's busy time that none of our processes used: noise
BENCH = "bench"  # the bench's own process: sampling and polling, not part of any workload
PidsOf = Callable[[], Mapping[str, int | None]]


@dataclass
class RoleMemory:
    peak_rss: int = 0  # the tree's RSS summed, at its highest sample
    peak_each: dict[str, int] = field(default_factory=dict)  # "pid 123 (granian worker)": peak


class Sampler:
    """Call `start()`, then `cpu_mark()` around phases; `stop()` before reading the peaks."""

    MEMORY_ROLES = ("api", "relay", "consumer")

    def __init__(self, roots: PidsOf, interval: float = 0.25) -> None:
        self._roots = roots
        self._interval = interval
        self.memory: dict[str, RoleMemory] = {role: RoleMemory() for role in self.MEMORY_ROLES}
        self.cpu_seconds: dict[str, float] = {}
        self.phase_peak: dict[str, int] = {}  # since the last `cpu_mark`: RSS per role
        self._cpu_seen: dict[int, float] = {}
        self._procs: dict[int, psutil.Process] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def cpu_mark(self) -> dict[str, float]:
        """CPU seconds used so far per role (subtract two marks to get a phase's share),
        and by the whole machine (`machine`), whoever used it."""
        self.sample()
        with self._lock:
            times = psutil.cpu_times()
            busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
            return {**self.cpu_seconds, MACHINE: busy}

    def phase_peaks(self) -> dict[str, int]:
        """The highest RSS of each role since the last call (a phase's peak), then reset."""
        self.sample()
        with self._lock:
            peaks, self.phase_peak = self.phase_peak, {}
            return peaks

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            trees = self._trees()
            for role, procs in trees.items():
                self._account(role, procs)

    def _process(self, pid: int) -> psutil.Process:
        proc = self._procs.get(pid)
        if proc is None:
            proc = self._procs[pid] = psutil.Process(pid)
        return proc

    def _trees(self) -> dict[str, list[psutil.Process]]:
        trees: dict[str, list[psutil.Process]] = {}
        claimed: set[int] = set()
        for role, pid in self._roots().items():
            if pid is None:
                continue
            try:
                root = self._process(pid)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            trees[role] = tree
            claimed.update(p.pid for p in tree)
        try:
            me = self._process(os.getpid())
            trees[BENCH] = [me]
            trees["load"] = [p for p in me.children(recursive=True) if p.pid not in claimed]
        except psutil.Error:
            pass
        return trees

    def _account(self, role: str, procs: list[psutil.Process]) -> None:
        total_rss = 0
        used = 0.0
        for proc in procs:
            try:
                with proc.oneshot():
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                    label = f"pid {proc.pid} ({proc.name()})"
            except psutil.Error:
                continue
            total_rss += rss
            cpu = times.user + times.system
            used += cpu - self._cpu_seen.get(proc.pid, 0.0)
            self._cpu_seen[proc.pid] = cpu
            if role in self.memory:
                each = self.memory[role].peak_each
                each[label] = max(each.get(label, 0), rss)
        self.cpu_seconds[role] = self.cpu_seconds.get(role, 0.0) + used
        if role in self.memory:
            self.memory[role].peak_rss = max(self.memory[role].peak_rss, total_rss)
            self.phase_peak[role] = max(self.phase_peak.get(role, 0), total_rss)


def cpu_share(
    before: Mapping[str, float], after: Mapping[str, float], seconds: float
) -> dict[str, float]:
    """Cores used per role between two marks (1.0 = one core flat out, of os.cpu_count());
    `other` is what the rest of the machine used meanwhile."""
    if seconds <= 0:
        return {}
    used = {role: (after[role] - before.get(role, 0.0)) / seconds for role in after}
    machine = used.pop(MACHINE, 0.0)
    used[OTHER] = max(0.0, machine - sum(used.values()))
    return {role: round(cores, 2) for role, cores in sorted(used.items())}
