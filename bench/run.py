"""One bench run, phase by phase; `python -m bench` (bench/__main__.py) calls `run`.

Order: relay drains against the raw producer at each key cardinality (empty database, only
the relay running), then the sustained-capacity search and CPU per order (the whole
pipeline), then closed loop and pgbench side by side, with the relay and the consumer stopped
so the API and pgbench meet the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import (
    api_load,
    baselines,
    capacity,
    cpu,
    end_to_end,
    headline,
    profile,
    relay_drain,
    report,
    tools,
)
from bench.api_load import LoadResult, Tools
from bench.baselines import DrainVsRaw, PgbenchResult
from bench.capacity import Capacity, Plan, Step
from bench.cpu import CpuPerUnit
from bench.end_to_end import EndToEnd
from bench.memory import MB, Sampler, cpu_share
from bench.relay_drain import KEY_COUNTS
from bench.results import EndToEndRun, Memory, Results
from bench.stack import DRAIN_TOPIC, RAW_TOPIC, Sql, Stack
from bench.ui import console, phase, step
from scripts.stack import principals

WARM_UP_MESSAGES = 5_000  # the raw producer's untimed first run


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...] = (8, 32, 64)
    seconds: int = 10  # each closed-loop and pgbench run
    search: Plan = field(default_factory=Plan)
    step_seconds: int = 10  # each open-loop step of the capacity search
    # Before the search, orders at half its first rate: Kafka's JIT needs a few thousand
    # orders to warm (CPU per order fell ~2x over the first 90 s), and a first step judged
    # on a cold broker failed where a warm one held.
    warm_up_seconds: int = 60
    cpu_fraction: float = 0.8  # CPU per order is measured at this fraction of capacity (see docs)
    cpu_seconds: int = 20
    drain_rows: int = 100_000
    key_counts: tuple[int, ...] = KEY_COUNTS
    settle_timeout: float = 30.0  # after a step, for its orders to leave `pending`
    recover_timeout: float = 120.0  # after a failed step, for the pipeline to catch up
    profile: bool = False


@dataclass
class Collected:
    closed: list[LoadResult] = field(default_factory=list)
    pgbench: list[PgbenchResult] = field(default_factory=list)
    open: list[LoadResult] = field(default_factory=list)
    e2e: list[EndToEndRun] = field(default_factory=list)  # one per `open`, in the same order
    drains: list[DrainVsRaw] = field(default_factory=list)
    unfenced: DrainVsRaw | None = None
    capacity: Capacity | None = None
    orders_cpu: CpuPerUnit | None = None
    pgbench_cpu: CpuPerUnit | None = None
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> cores
    used: dict[str, dict[str, float]] = field(default_factory=dict)  # phase -> CPU seconds
    elapsed: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    rss: dict[str, dict[str, float]] = field(default_factory=dict)
    profiles: list[profile.ProfileSummary] = field(default_factory=list)


class Run:
    def __init__(self, stack: Stack, settings: Settings, load: Tools, pgbench: str) -> None:
        self.stack = stack
        self.settings = settings
        self.load = load
        self.pgbench = pgbench
        self.out = Collected()
        self.work = stack.root / "work"
        self.sampler = Sampler(self._roots)

    def _roots(self) -> dict[str, int | None]:
        found = self.stack.found
        return {
            "api": self.stack.pid("api"),
            "relay": self.stack.pid("relay"),
            "consumer": self.stack.pid("consumer"),
            "postgres": found.postgres.pid if found.postgres else None,
            "kafka": found.kafka.pid if found.kafka else None,
        }

    @contextmanager
    def measured(self, name: str) -> Iterator[None]:
        """A phase whose CPU use (per role) and peak memory (per role) are recorded."""
        before, started = self.sampler.cpu_mark(), time.monotonic()
        self.sampler.phase_peaks()
        yield
        self.stack.check_alive()
        elapsed, after = time.monotonic() - started, self.sampler.cpu_mark()
        self.out.cpu[name] = cpu_share(before, after, elapsed)
        self.out.used[name] = cpu.used(before, after)
        self.out.elapsed[name] = elapsed
        peaks = self.sampler.phase_peaks()
        self.out.rss[name] = {role: round(rss / MB, 1) for role, rss in sorted(peaks.items())}

    # --- relay drains ---------------------------------------------------------------------

    def relay(self) -> None:
        s = self.settings
        keys = ", ".join(f"{k:,}" for k in s.key_counts)
        phase(f"Relay drain of {s.drain_rows:,} outbox rows at {keys} keys, each vs raw producer")
        with self.stack.sql() as conn:
            self._warm_raw_producer(conn)
            for count in s.key_counts:
                self.out.drains.append(self._drain_at(conn, count))
            self.out.unfenced = self._drain_at(conn, s.key_counts[0], fencing=False)

    def _warm_raw_producer(self, conn: Sql) -> None:
        """Kafka has just started: its first produce requests are slow (JIT, leaders, files),
        which would flatter the first cardinality's ratio. Send a small backlog once, untimed."""
        relay_drain.clear(conn, DRAIN_TOPIC)
        relay_drain.fill(conn, DRAIN_TOPIC, WARM_UP_MESSAGES, KEY_COUNTS[0])
        messages = relay_drain.messages(conn, DRAIN_TOPIC)
        baselines.raw_producer(self.stack.kafka_client(principals.RELAY), RAW_TOPIC, messages)
        relay_drain.clear(conn, DRAIN_TOPIC)

    def _drain_at(self, conn: Sql, keys: int, *, fencing: bool = True) -> DrainVsRaw:
        """One cardinality: a fresh backlog, the raw producer on its messages, a fresh relay
        (`fencing=False`: one idempotent pipelined producer, RELAY_FENCING=false)."""
        relay_env = {} if fencing else {"RELAY_FENCING": "false"}
        label = f"{keys:,} keys" + ("" if fencing else ", fencing off")
        rows = self.settings.drain_rows
        self.stack.stop("relay")  # each drain starts its own relay, as the first one did
        relay_drain.clear(conn, DRAIN_TOPIC)
        relay_drain.fill(conn, DRAIN_TOPIC, rows, keys)
        with step("reading the backlog for the raw producer"):
            messages = relay_drain.messages(conn, DRAIN_TOPIC)
        with self.measured(f"raw producer, {label}"):
            raw = baselines.raw_producer(
                self.stack.kafka_client(principals.RELAY), RAW_TOPIC, messages
            )
        del messages
        with self.measured(f"relay drain, {label}"):
            drained = relay_drain.drain(
                conn,
                DRAIN_TOPIC,
                rows,
                lambda: self.stack.start("relay", relay_env),
                batch_size=self.stack.settings.relay.batch_size,
                keys=keys,
            )
        pair = DrainVsRaw(keys, drained, raw)
        console.log(
            f"{label}: relay {drained.events_per_s:,.0f} events/s (a batch every "
            f"{drained.batch_cycle_ms:,.0f} ms), raw producer {raw.events_per_s:,.0f}/s: "
            f"{pair.share:.0%}"
        )
        return pair

    # --- the whole pipeline: capacity search, then CPU per order ---------------------------

    def pipeline(self) -> None:
        plan = self.settings.search
        phase(
            f"Sustained capacity: open-loop steps of {self.settings.step_seconds}s from "
            f"{plan.start}/s (at most {plan.max_steps}), end to end ≤ {capacity.E2E_P99_MS:.0f} ms"
        )
        self.stack.start("relay")
        self.stack.start("consumer")
        with self.stack.sql() as conn:
            rate, seconds = max(20, plan.start // 2), self.settings.warm_up_seconds
            console.log(f"warming up: {rate} orders/s for {seconds}s (not measured)")
            api_load.open_loop(self.load, self.stack.api, rate, seconds, "warm-up", self.work)
            if not end_to_end.wait_settled(conn, "warm-up", timeout=60):
                raise RuntimeError("the pipeline did not confirm the warm-up orders in 60 s")
            self.out.capacity = self._search(conn)
            self._cpu_per_order(conn)

    def _search(self, conn: Sql) -> Capacity:
        plan, steps = self.settings.search, list[Step]()
        flows: dict[int, EndToEnd] = {}
        while (rate := capacity.next_rate(steps, plan)) is not None:
            run = f"step{len(steps) + 1}-{rate}"
            flow, reason = self._step(conn, rate, run)
            flows[rate] = flow
            steps.append(Step(rate, not reason, reason))
            held, failed = capacity.bracket(steps)
            verdict = "[green]held" if not reason else f"[red]failed[/]: {reason}"
            console.log(
                f"step {len(steps)}/{plan.max_steps}: {rate:,}/s {verdict}; capacity in "
                f"[{held or 0:,}, {f'{failed:,}' if failed else '?'})/s"
            )
            if reason and not self._caught_up(conn, run):
                console.log("[red]the pipeline did not catch up: the search stops here")
                break
        found = capacity.capacity(steps)
        console.log(f"sustained capacity: {f'{found:,}/s' if found else 'none found'}")
        return Capacity(found, steps, self.settings.step_seconds, flows.get(found or 0))

    def _step(self, conn: Sql, rate: int, run: str) -> tuple[EndToEnd, str]:
        """One open-loop step: load, wait for its orders, measure, judge ("" = it held)."""
        seconds = self.settings.step_seconds
        with self.measured(f"step {rate}/s"):
            result, _ = api_load.open_loop(self.load, self.stack.api, rate, seconds, run, self.work)
        end_to_end.wait_settled(conn, run, timeout=self.settings.settle_timeout)
        flow = self._record(conn, result, run, rate, seconds)
        return flow, capacity.judge(result, flow)

    def _record(self, conn: Sql, result: LoadResult, run: str, rate: int, seconds: int) -> EndToEnd:
        flow, latencies = end_to_end.measure(conn, run, rate, seconds)
        cdf = np.percentile(latencies, np.arange(101)) if len(latencies) else []
        self.out.open.append(result)
        self.out.e2e.append(EndToEndRun(flow, [round(float(v), 2) for v in cdf]))
        console.log(
            f"{rate}/s: API p99 {result.p99_ms:.1f} ms, errors {sum(result.errors.values())}; "
            f"end to end p50 {flow.p50_ms} ms, p99 {flow.p99_ms} ms, "
            f"{flow.confirmed}/{flow.orders} confirmed"
        )
        return flow

    def _caught_up(self, conn: Sql, run: str) -> bool:
        """After a failed step: wait until its orders left `pending` and the outbox is empty."""
        timeout = self.settings.recover_timeout
        if not end_to_end.wait_settled(conn, run, timeout=timeout):
            return False
        return end_to_end.wait_published(conn, timeout=timeout)

    def _cpu_per_order(self, conn: Sql) -> None:
        s, found = self.settings, self.out.capacity.rate if self.out.capacity else None
        if not found:
            console.log("[yellow]no sustained capacity: CPU per order is not measured")
            return
        rate = max(1, round(found * s.cpu_fraction))
        name = f"orders at {s.cpu_fraction:.0%} of capacity ({rate}/s)"
        phase(f"CPU per order: {name}, {s.cpu_seconds}s")
        with self.measured(name):  # until every order is confirmed: all of its work counted
            result, _ = api_load.open_loop(
                self.load, self.stack.api, rate, s.cpu_seconds, f"cpu-{rate}", self.work
            )
            end_to_end.wait_settled(conn, f"cpu-{rate}", timeout=s.settle_timeout)
        flow = self._record(conn, result, f"cpu-{rate}", rate, s.cpu_seconds)
        if flow.confirmed:
            self.out.orders_cpu = cpu.per_unit(
                name, self.out.used[name], flow.confirmed, self.out.elapsed[name]
            )
            console.log(f"CPU per order: {self.out.orders_cpu.total_ms:.2f} ms")

    # --- the API alone against pgbench ------------------------------------------------------

    def closed(self) -> None:
        s = self.settings
        phase(f"Closed loop (wrk) and pgbench at {', '.join(map(str, s.concurrency))} clients")
        self.stack.stop("consumer")
        self.stack.stop("relay")
        api_load.closed_loop(self.load, self.stack.api, max(s.concurrency), 3, "warm-up")
        for clients in s.concurrency:
            with self.measured(f"API c={clients}"):
                result = api_load.closed_loop(
                    self.load, self.stack.api, clients, s.seconds, f"closed-{clients}"
                )
            self.out.closed.append(result)
            with self.measured(f"pgbench c={clients}"):
                base = baselines.pgbench(
                    self.pgbench, self.stack.database_url, clients, s.seconds, self.work / "pgbench"
                )
            self.out.pgbench.append(base)
            console.log(
                f"c={clients}: API {result.throughput:,.0f}/s (p99 {result.p99_ms:.1f} ms), "
                f"pgbench {base.tps:,.0f}/s (p99 {base.p99_ms:.1f} ms): "
                f"{result.throughput / base.tps:.0%}"
            )
        self.out.pgbench_cpu = self._pgbench_cpu()

    def _pgbench_cpu(self) -> CpuPerUnit | None:
        """CPU per transaction of pgbench's best run, measured as orders' CPU is."""
        best = max(self.out.pgbench, key=lambda r: r.tps, default=None)
        if best is None or best.transactions <= 0:
            return None
        name = f"pgbench c={best.concurrency}"
        found = cpu.per_unit(name, self.out.used[name], best.transactions, self.out.elapsed[name])
        console.log(
            f"pgbench's CPU per transaction (c={best.concurrency}): {found.total_ms:.2f} ms"
        )
        return found

    # --- profiles ---------------------------------------------------------------------------

    def profiles(self, py_spy: str) -> None:
        phase("Profiles (py-spy): the API under closed loop, the relay draining")
        self._profile_api(py_spy)
        self._profile_relay(py_spy)
        for summary in self.out.profiles:
            console.log(f"profile of {summary.process}: {summary.raw_stacks}")

    def _profile_api(self, py_spy: str) -> None:
        clients = sorted(self.settings.concurrency)[len(self.settings.concurrency) // 2]
        api_pid = self.stack.pid("api")
        assert api_pid is not None
        seconds = self.settings.seconds
        stacks = self.stack.root / "profiles" / "api.txt"
        spy = profile.record(py_spy, api_pid, seconds, stacks)
        api_load.closed_loop(self.load, self.stack.api, clients, seconds, "profile")
        spy.wait(30)
        self.out.profiles.append(
            profile.summarise(f"api (wrk, {clients} clients)", stacks, seconds)
        )

    def _profile_relay(self, py_spy: str) -> None:
        keys = KEY_COUNTS[0]
        with self.stack.sql() as conn:
            backlog = relay_drain.unpublished(conn)
            rows = min(self.settings.drain_rows, 50_000)
            relay_drain.fill(conn, DRAIN_TOPIC, rows, keys)
            rate = next((d.drain.events_per_s for d in self.out.drains if d.keys == keys), 5e3)
            seconds = max(2, int(0.7 * (backlog + rows) / max(rate, 1.0)))
            relay = self.stack.start("relay")
            relay_drain.wait_started(conn, backlog + rows)  # profile draining, not start-up
            assert relay.pid is not None
            stacks = self.stack.root / "profiles" / "relay.txt"
            spy = profile.record(py_spy, relay.pid, seconds, stacks)
            spy.wait(seconds + 60)
            self.out.profiles.append(
                profile.summarise(f"relay (draining, {keys:,} keys)", stacks, seconds)
            )
            relay_drain.wait_drained(conn, rows)

    # --- results ----------------------------------------------------------------------------

    def _recorded_settings(self) -> dict[str, object]:
        s, services = self.settings, self.stack.settings
        return {
            "concurrency": list(s.concurrency),
            "seconds": s.seconds,
            "search": {
                "start": s.search.start,
                "factor": s.search.factor,
                "resolution": s.search.resolution,
                "max_steps": s.search.max_steps,
            },
            "step_seconds": s.step_seconds,
            "warm_up_seconds": s.warm_up_seconds,
            "cpu_fraction": s.cpu_fraction,
            "cpu_seconds": s.cpu_seconds,
            "drain_rows": s.drain_rows,
            "key_counts": list(s.key_counts),
            "postgres_fsync": "on",
            "HTTP_WORKERS": services.http.workers,
            "DB_POOL_SIZE": services.database.pool_size,
            "RELAY_BATCH_SIZE": services.relay.batch_size,
            "RELAY_POLL_INTERVAL": services.relay.poll_interval,
            "CONSUMER_BATCH_SIZE": services.consumer.batch_size,
        }

    def _memory(self) -> dict[str, Memory]:
        return {
            role: Memory(
                peak_mb=round(mem.peak_rss / MB, 1),
                each_mb={name: round(rss / MB, 1) for name, rss in mem.peak_each.items()},
            )
            for role, mem in self.sampler.memory.items()
        }

    def results(self, started_at: datetime, seconds: float, machine: dict[str, str]) -> Results:
        out = self.out
        results = Results(
            started_at=started_at.isoformat(timespec="seconds"),
            seconds=round(seconds, 1),
            machine=machine,
            settings=self._recorded_settings(),
            api_closed_loop=out.closed,
            pgbench=out.pgbench,
            api_open_loop=out.open,
            end_to_end=out.e2e,
            relay_drains=out.drains,
            relay_drain_unfenced=out.unfenced,
            capacity=out.capacity,
            cpu_per_order=out.orders_cpu,
            pgbench_cpu=out.pgbench_cpu,
            memory=self._memory(),
            cpu_cores=out.cpu,
            rss_mb_by_phase=out.rss,
            profiles=out.profiles,
        )
        results.headline = headline.compute(
            out.capacity, out.pgbench, out.closed, out.drains, out.orders_cpu, out.pgbench_cpu
        )
        results.targets = report.targets(results)
        return results


def versions(stack: Stack) -> tuple[str, str]:
    with stack.sql() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server = str(row[0]) if row else "?"
    kafka = "given (KAFKA_BROKERS)"
    if stack.found.kafka is not None:
        from scripts.stack.kafka import classpath  # noqa: PLC0415

        jars = sorted(Path(classpath().rstrip("*")).glob("kafka_2.13-*.jar"))
        kafka = jars[0].stem.split("-", 1)[1] if jars else "?"
    return server, kafka


def run(stack: Stack, settings: Settings, load: Tools, py_spy: str | None) -> Results:
    started_at = datetime.now(UTC)
    started = time.monotonic()
    machine = report.machine(*versions(stack))
    bench = Run(stack, settings, load, tools.pgbench())
    stack.start("api")
    bench.sampler.start()
    try:
        bench.relay()
        bench.pipeline()
        bench.closed()
        if py_spy is not None:
            bench.profiles(py_spy)
    finally:
        bench.sampler.stop()
    return bench.results(started_at, time.monotonic() - started, machine)
