"""The floor: what the parts DESIGN.md names cost with none of our code, beside issue 14's targets.

`python -m bench.floor [--rate N] [--seconds 20]` (`make floor`, about six minutes) starts
PostgreSQL and Kafka as `make bench` does (SASL, a login per process, fsync and
synchronous_commit on) and none of our services, and measures with `make bench`'s CPU
accounting (`bench/cpu.py`):

1. pgbench on the API's create statement, and `bench/floor_app.py` closed loop (wrk), at 32
   clients each, three times in turn: Litestar on granian as the API is served, msgspec,
   pgbench's statement through psycopg — no authentication, validation or SQLAlchemy.
2. PostgreSQL and Kafka with nothing to do, for `seconds`.
3. The pipeline with none of our code, at `rate` orders a second, twice for `seconds` (after
   as long a warm-up as `make bench`'s, unmeasured): vegeta offering creates to the floor
   app while `bench/floor_kafka.py` sends two events an order through one transactional
   producer and reads them back with a `read_committed` consumer (no database). The
   consumer's write of an order is not in it: it is counted as a second create
   (PostgreSQL's CPU a create, less its idle share).
4. The database side of a drain, three times: `rows` outbox rows claimed `RELAY_BATCH_SIZE`
   at a time (`FOR UPDATE SKIP LOCKED`; no leases, shards or parked keys) and marked published,
   nothing sent, beside the raw producer on the same rows, as `make bench` runs it.

Each ratio is the median of its rounds (this machine's speed moves by a third within
minutes), the pipeline's CPU the cheaper pass. `rate` defaults to the rate the targets
imply for CPU per order: `make bench` measures it at 80% of capacity, and the capacity
target is 15% of pgbench, so 12% of pgbench's tps. The figures go to
`bench/results/floor.json`; a table sets each target beside its floor.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import msgspec

from app import config
from app.db.engine import libpq_url
from bench import api_load, baselines, cpu, floor_plot, relay_drain, report, stack, tools
from bench.api_load import Api, LoadResult, Tools
from bench.arguments import positive
from bench.floor_figures import DrainRound, Floor, PipelineFloor, Round, figures, table
from bench.headline import CAPACITY_VS_PGBENCH
from bench.run import WARM_UP_MESSAGES, Run, Settings
from bench.stack import DRAIN_TOPIC, RAW_TOPIC, Sql
from bench.ui import console, phase, step
from scripts.stack import principals
from scripts.stack.processes import ManagedProcess
from scripts.stack.waiting import wait_for

RESULTS = Path(__file__).with_name("results") / "floor.json"
CLIENTS = 32  # pgbench's best of 8, 32 and 64 here
ROUNDS = 3
PASSES = 2
# make bench measures CPU per order at this fraction of capacity; the capacity target is a
# fraction of pgbench's tps: so the rate at which CPU per order would be measured, were it met.
TARGET_RATE = Settings().cpu_fraction * CAPACITY_VS_PGBENCH
CLAIM = """
    WITH claimed AS (
        SELECT id, topic, key, payload, headers, seq FROM outbox
         WHERE published_at IS NULL AND parked_at IS NULL
         ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
    SELECT coalesce(json_agg(claimed ORDER BY seq), '[]')::text,
           coalesce(array_agg(id ORDER BY seq), '{}')::text
      FROM claimed
"""
MARK = "UPDATE outbox SET published_at = statement_timestamp() WHERE id = ANY(%(ids)s::uuid[])"


class Floors:
    """The phases, on one running stack."""

    def __init__(self, system: stack.Stack, seconds: int) -> None:
        vegeta, wrk = tools.vegeta(console), tools.wrk(console)
        self.run = Run(system, Settings(), Tools(wrk=wrk, vegeta=vegeta), tools.pgbench())
        self.system = system
        self.seconds = seconds

    def per_unit(self, label: str, units: int) -> cpu.CpuPerUnit:
        return cpu.per_unit(label, self.run.out.used[label], units, self.run.out.elapsed[label])

    def rounds(self, count: int) -> list[Round]:
        """pgbench and the floor app closed loop, in turn: this machine's speed moves by a
        third within minutes, so each ratio is taken from two runs side by side."""
        phase(f"pgbench and the floor app, {CLIENTS} clients each, {count} times in turn")
        self._start_app()
        found = []
        for number in range(1, count + 1):
            label = f"pgbench {number}"
            with self.run.measured(label):
                url, work = self.system.database_url, self.run.work / "pgbench"
                base = baselines.pgbench(self.run.pgbench, url, CLIENTS, self.seconds, work)
            app = api_load.closed_loop(
                self.run.load, self._api(), CLIENTS, self.seconds, f"floor-{number}"
            )
            found.append(Round(base, self.per_unit(label, base.transactions), app))
            console.log(
                f"round {number}: pgbench {base.tps:,.0f}/s, the floor app {app.throughput:,.0f}/s"
            )
        return found

    def idle(self) -> dict[str, float]:
        """CPU seconds a second of each role with nothing to do."""
        phase(f"PostgreSQL and Kafka idle for {self.seconds} s")
        with self.run.measured("idle"), step("idle"):
            time.sleep(self.seconds)  # the window measured, not a wait for a condition
        elapsed = self.run.out.elapsed["idle"]
        return {role: used / elapsed for role, used in self.run.out.used["idle"].items()}

    def pipeline(self, rate: int, warm_up: int, passes: int) -> list[PipelineFloor]:
        phase(f"The pipeline with none of our code: {rate} orders/s, {passes} x {self.seconds} s")
        self._start_app()
        # Kafka's JIT roughly halves its CPU per message over its first minute or so of
        # traffic; make bench warms up for the same reason (its --warm-up-seconds).
        self._pass(rate, warm_up, "floor-warm-up")
        found = []
        for number in range(1, passes + 1):
            label = f"pipeline {number}"
            with self.run.measured(label):
                result, sent = self._pass(rate, self.seconds, f"floor-{number}")
            found.append(PipelineFloor(rate, result, sent, self.per_unit(label, result.ok)))
        return found

    def _pass(self, rate: int, seconds: int, run: str) -> tuple[LoadResult, dict[str, object]]:
        # As a super user: no ACL is checked, which makes the floor lower, never higher.
        client = json.dumps(self.system.kafka_client(principals.ADMIN))
        argv = ["-m", "bench.floor_kafka", str(rate), str(seconds)]
        kafka = self._service("relay", argv, {"FLOOR_KAFKA": client})
        result, _ = api_load.open_loop(
            self.run.load, self._api(), rate, seconds, run, self.run.work
        )
        with step("the Kafka floor finishing"):
            code = kafka.wait(seconds + 90)
        self.system.stop("relay")  # it has exited: not a death for the window's check
        if code != 0 or kafka.log_path is None:
            raise RuntimeError(f"bench.floor_kafka failed ({code}): see {kafka.log_path}")
        sent: dict[str, object] = json.loads(kafka.log_path.read_text().splitlines()[-1])
        return result, sent

    def drains(self, rows: int, count: int) -> list[DrainRound]:
        phase(f"The database side of a drain, {rows:,} rows, and the raw producer: {count} times")
        self.system.stop("api")
        client = self.system.kafka_client(principals.RELAY)
        found = []
        with self.system.sql() as conn:
            # The floor app's creates wrote events too: nobody publishes them, so out of the way.
            conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")
            for number in range(count):
                relay_drain.clear(conn, DRAIN_TOPIC)
                relay_drain.fill(conn, DRAIN_TOPIC, rows, relay_drain.KEY_COUNTS[0])
                messages = relay_drain.messages(conn, DRAIN_TOPIC)
                if number == 0:  # Kafka has just started: warm it, untimed, as make bench does
                    baselines.raw_producer(client, RAW_TOPIC, messages[:WARM_UP_MESSAGES])
                raw = baselines.raw_producer(client, RAW_TOPIC, messages)
                del messages
                batch = self.system.settings.relay.batch_size
                found.append(DrainRound(claim_and_mark(conn, rows, batch), raw))
            relay_drain.clear(conn, DRAIN_TOPIC)
        return found

    def _start_app(self) -> None:
        if self.system.pid("api") is None:
            # The API's own database login (its grants, not the owner's), as make bench's API.
            own = self.system.found.process_env("api").get("DATABASE_URL")
            url = libpq_url(config.sqlalchemy_url(own)) if own else self.system.database_url
            env = {"FLOOR_DATABASE_URL": url, "HTTP_WORKERS": self.system.env["HTTP_WORKERS"]}
            self._service("api", ["-m", "bench.floor_app", str(self.system.http_port)], env)
            self._wait_app()

    def _service(self, name: str, argv: list[str], env: Mapping[str, str]) -> ManagedProcess:
        """`argv` run as role `name` (its CPU counted as that role's), given only `env`
        beyond the bench's own environment (none of the services' secrets)."""
        process = ManagedProcess(
            name,
            [sys.executable, *argv],
            env,
            log_path=self.system.root / "logs" / f"floor-{name}.log",
        )
        process.start()
        self.system.processes[name] = process
        return process

    def _wait_app(self) -> None:
        def answers() -> bool:
            self.system.check_alive()
            body = msgspec.json.encode(api_load.order("floor-ready"))
            request = urllib.request.Request(self._api().orders_url, body, self._api().headers)
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 201)

        wait_for(answers, timeout=60, what="the floor app to answer")

    def _api(self) -> Api:
        return Api(self.system.base_url, {"Content-Type": "application/json"})


def claim_and_mark(conn: Sql, rows: int, batch: int) -> float:
    """Claim and mark `rows` rows as a relay would, `batch` at a time, nothing sent; rows a
    second."""
    done = 0
    with step(f"claiming and marking {rows:,} rows, {batch:,} at a time"):
        started = time.perf_counter()
        for _ in range(rows // batch + 2):  # bounded: the backlog is all there is
            with conn.transaction():
                found = conn.execute(CLAIM, {"limit": batch}).fetchone()
                assert found is not None  # an aggregate: one row, always
                _, ids = found
                if ids == "{}":
                    break
                conn.execute(MARK, {"ids": ids})
            done += ids.count(",") + 1
        seconds = time.perf_counter() - started
    if done != rows:
        raise RuntimeError(f"claimed {done:,} of {rows:,} rows")
    return round(done / seconds, 1)


def measure(seconds: int, rate: int | None, rows: int, warm_up: int) -> Floor:
    with stack.running() as system:
        floors = Floors(system, seconds)
        floors.run.sampler.start()
        try:
            rounds = floors.rounds(ROUNDS)
            idle = floors.idle()
            tps = statistics.median(r.pgbench.tps for r in rounds)
            at = rate or max(1, round(tps * TARGET_RATE))
            passes = floors.pipeline(at, warm_up, PASSES)
            drains = floors.drains(rows, ROUNDS)
        finally:
            floors.run.sampler.stop()
    return figures(rounds, idle, passes, drains)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    add = parser.add_argument
    add("--rate", type=positive, default=None, help="orders/s (default: 12%% of pgbench's)")
    add("--seconds", type=positive, default=20, help="each phase (default %(default)s)")
    add("--rows", type=positive, default=100_000, help="the drain (default %(default)s)")
    add("--warm-up-seconds", type=positive, default=60, help="(default %(default)s)")
    add("--plot-only", action="store_true", help="redraw floor.png from floor.json and stop")
    args = parser.parse_args(argv)
    if args.plot_only:
        floor = msgspec.json.decode(RESULTS.read_bytes(), type=Floor)
    else:
        floor = measure(args.seconds, args.rate, args.rows, args.warm_up_seconds)
        RESULTS.write_bytes(msgspec.json.format(msgspec.json.encode(floor), indent=2) + b"\n")
        console.print(f"wrote {RESULTS}")
    console.print(table(floor))
    latest = RESULTS.with_name("latest.json")
    ours = report.load(latest) if latest.exists() else None
    console.print(f"wrote {floor_plot.draw(floor, ours, RESULTS.with_suffix('.png'))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
