"""One bench run, phase by phase; `python -m bench` (bench/__main__.py) calls `run`.

Order: relay drain and the raw producer (empty database, only the relay running; the backlog
is drained once without fencing, RELAY_FENCING=false, and once more as configured), then
open loop and end to end (the whole pipeline), then closed loop and pgbench side by side,
with the relay and the consumer stopped so the API and pgbench meet the same machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import api_load, baselines, end_to_end, profile, relay_drain, report, tools
from bench.api_load import LoadResult, Tools
from bench.baselines import PgbenchResult, ProducerResult
from bench.memory import MB, Sampler, cpu_share
from bench.relay_drain import Drain
from bench.report import EndToEndRun, Memory, Results
from bench.stack import DRAIN_TOPIC, RAW_TOPIC, Sql, Stack
from bench.ui import console, phase, step


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...] = (8, 32, 64)
    rates: tuple[int, ...] = (100, 200, 400)
    seconds: int = 10  # each closed-loop, pgbench and open-loop run
    e2e_rate: int = 200
    e2e_seconds: int = 20
    drain_rows: int = 100_000
    settle_timeout: float = 60.0
    profile: bool = False


@dataclass
class Collected:
    closed: list[LoadResult] = field(default_factory=list)
    pgbench: list[PgbenchResult] = field(default_factory=list)
    open: list[LoadResult] = field(default_factory=list)
    e2e: list[EndToEndRun] = field(default_factory=list)
    drain: Drain | None = None
    drain_unfenced: Drain | None = None
    raw: ProducerResult | None = None
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)
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
        elapsed = time.monotonic() - started
        self.out.cpu[name] = cpu_share(before, self.sampler.cpu_mark(), elapsed)
        peaks = self.sampler.phase_peaks()
        self.out.rss[name] = {role: round(rss / MB, 1) for role, rss in sorted(peaks.items())}

    # --- phases -------------------------------------------------------------------------

    def relay(self) -> None:
        phase(f"Relay drain: {self.settings.drain_rows:,} outbox rows, and the raw producer")
        with self.stack.sql() as conn:
            relay_drain.fill(conn, DRAIN_TOPIC, self.settings.drain_rows)
            with step("reading the backlog for the raw producer"):
                messages = relay_drain.messages(conn, DRAIN_TOPIC)
            with self.measured("raw producer"):
                self.out.raw = baselines.raw_producer(
                    self.stack.found.kafka_brokers, RAW_TOPIC, messages
                )
            del messages
            console.log(f"raw producer: {self.out.raw.events_per_s:,.0f} events/s")
            self.unfenced(conn)
            relay_drain.fill(conn, DRAIN_TOPIC, self.settings.drain_rows)
            with self.measured("relay drain"):
                self.out.drain = relay_drain.drain(
                    conn,
                    DRAIN_TOPIC,
                    self.settings.drain_rows,
                    lambda: self.stack.start("relay"),
                    batch_size=self.stack.settings.relay.batch_size,
                )
            console.log(
                f"relay drain: {self.out.drain.rows:,} rows in {self.out.drain.seconds:.1f}s, "
                f"{self.out.drain.events_per_s:,.0f} events/s"
            )

    def unfenced(self, conn: Sql) -> None:
        """The same backlog drained by a relay without fencing (one idempotent, pipelined
        producer): the difference to the default relay is what fencing costs."""
        with self.measured("relay drain, fencing off"):
            self.out.drain_unfenced = relay_drain.drain(
                conn,
                DRAIN_TOPIC,
                self.settings.drain_rows,
                lambda: self.stack.start("relay", {"RELAY_FENCING": "false"}),
                batch_size=self.stack.settings.relay.batch_size,
            )
        self.stack.stop("relay")
        conn.execute("DELETE FROM outbox")  # the default relay drains a backlog of its own
        console.log(
            f"relay drain without fencing: {self.out.drain_unfenced.events_per_s:,.0f} events/s"
        )

    def pipeline(self) -> None:
        s = self.settings
        phase(f"Open loop at {', '.join(map(str, s.rates))}/s, end to end at {s.e2e_rate}/s")
        self.stack.start("consumer")
        with self.stack.sql() as conn:
            api_load.open_loop(self.load, self.stack.base_url, 20, 3, "warm-up", self.work)
            if not end_to_end.wait_settled(conn, "warm-up", timeout=60):
                raise RuntimeError("the pipeline did not confirm the warm-up orders in 60 s")
            rates = sorted({*s.rates, s.e2e_rate})
            for rate in rates:
                seconds = s.e2e_seconds if rate == s.e2e_rate else s.seconds
                run = f"open-{rate}"
                with self.measured(f"open loop {rate}/s"):
                    result, _ = api_load.open_loop(
                        self.load, self.stack.base_url, rate, seconds, run, self.work
                    )
                self.out.open.append(result)
                end_to_end.wait_settled(conn, run, timeout=s.settle_timeout)
                flow, latencies = end_to_end.measure(conn, run, rate, seconds)
                cdf = np.percentile(latencies, np.arange(101)) if len(latencies) else []
                self.out.e2e.append(EndToEndRun(flow, [round(float(v), 2) for v in cdf]))
                console.log(
                    f"{rate}/s: API p99 {result.p99_ms:.1f} ms, errors "
                    f"{sum(result.errors.values())}; end to end p50 {flow.p50_ms:.1f} ms, "
                    f"p99 {flow.p99_ms:.1f} ms, {flow.confirmed}/{flow.orders} confirmed"
                )

    def closed(self) -> None:
        s = self.settings
        phase(f"Closed loop (wrk) and pgbench at {', '.join(map(str, s.concurrency))} clients")
        self.stack.stop("consumer")
        self.stack.stop("relay")
        api_load.closed_loop(self.load, self.stack.base_url, max(s.concurrency), 3, "warm-up")
        for clients in s.concurrency:
            with self.measured(f"API c={clients}"):
                result = api_load.closed_loop(
                    self.load, self.stack.base_url, clients, s.seconds, f"closed-{clients}"
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

    def profiles(self, py_spy: str) -> None:
        phase("Profiles (py-spy): the API under closed loop, the relay draining")
        directory = self.stack.root / "profiles"
        clients = sorted(self.settings.concurrency)[len(self.settings.concurrency) // 2]
        api_pid = self.stack.pid("api")
        assert api_pid is not None
        seconds = self.settings.seconds
        stacks = directory / "api.txt"
        spy = profile.record(py_spy, api_pid, seconds, stacks)
        api_load.closed_loop(self.load, self.stack.base_url, clients, seconds, "profile")
        spy.wait(30)
        self.out.profiles.append(
            profile.summarise(f"api (wrk, {clients} clients)", stacks, seconds)
        )
        with self.stack.sql() as conn:
            backlog = relay_drain.unpublished(conn)
            rows = min(self.settings.drain_rows, 50_000)
            relay_drain.fill(conn, DRAIN_TOPIC, rows)
            rate = self.out.drain.events_per_s if self.out.drain else 5000.0
            seconds = max(2, int(0.7 * (backlog + rows) / max(rate, 1.0)))
            relay = self.stack.start("relay")
            relay_drain.wait_started(conn, backlog + rows)  # profile draining, not start-up
            assert relay.pid is not None
            stacks = directory / "relay.txt"
            spy = profile.record(py_spy, relay.pid, seconds, stacks)
            spy.wait(seconds + 60)
            self.out.profiles.append(profile.summarise("relay (draining)", stacks, seconds))
            relay_drain.wait_drained(conn, rows)
        for summary in self.out.profiles:
            console.log(f"profile of {summary.process}: {summary.raw_stacks}")

    # --- results ------------------------------------------------------------------------

    def results(self, started_at: datetime, seconds: float, machine: dict[str, str]) -> Results:
        memory = {
            role: Memory(
                peak_mb=round(mem.peak_rss / MB, 1),
                each_mb={name: round(rss / MB, 1) for name, rss in mem.peak_each.items()},
            )
            for role, mem in self.sampler.memory.items()
        }
        s = self.settings
        services = self.stack.settings
        results = Results(
            started_at=started_at.isoformat(timespec="seconds"),
            seconds=round(seconds, 1),
            machine=machine,
            settings={
                "concurrency": list(s.concurrency),
                "rates": list(s.rates),
                "seconds": s.seconds,
                "e2e_rate": s.e2e_rate,
                "e2e_seconds": s.e2e_seconds,
                "drain_rows": s.drain_rows,
                "postgres_fsync": "on",
                "HTTP_WORKERS": services.http.workers,
                "DB_POOL_SIZE": services.database.pool_size,
                "RELAY_BATCH_SIZE": services.relay.batch_size,
                "RELAY_POLL_INTERVAL": services.relay.poll_interval,
                "CONSUMER_BATCH_SIZE": services.consumer.batch_size,
            },
            api_closed_loop=self.out.closed,
            pgbench=self.out.pgbench,
            api_open_loop=self.out.open,
            end_to_end=self.out.e2e,
            relay_drain=self.out.drain,
            relay_drain_unfenced=self.out.drain_unfenced,
            raw_producer=self.out.raw,
            memory=memory,
            cpu_cores=self.out.cpu,
            rss_mb_by_phase=self.out.rss,
            profiles=self.out.profiles,
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
