"""What the hardware gives without our code in the way, measured in the same run:

- pgbench running the API's create-order transaction (bench/create_order.sql) against the
  same database at the same concurrency as the API's closed-loop runs;
- a flat-out confluent-kafka producer, configured as the relay's (idempotent, acks=all, the
  same linger and batching), sending the relay-drain backlog's messages: same key, value
  bytes and headers, to a topic with the same partitions.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec
import numpy as np
from confluent_kafka import KafkaError, Message, Producer

from bench.relay_drain import Drain, Record
from bench.ui import run_timed, step
from relay.publisher import producer_config

CREATE_ORDER_SQL = Path(__file__).with_name("create_order.sql")


class PgbenchResult(msgspec.Struct):
    concurrency: int
    seconds: int
    transactions: int
    failed: int
    tps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


class ProducerResult(msgspec.Struct):
    messages: int
    seconds: float
    events_per_s: float
    failed: int


class DrainVsRaw(msgspec.Struct):
    """The relay's drain of a backlog and the raw producer sending the same messages."""

    keys: int
    drain: Drain
    raw: ProducerResult

    @property
    def share(self) -> float:
        """The relay's rate as a fraction of the raw producer's."""
        return self.drain.events_per_s / self.raw.events_per_s if self.raw.events_per_s else 0.0


def pgbench(
    binary: str, database_url: str, concurrency: int, seconds: int, workdir: Path
) -> PgbenchResult:
    workdir.mkdir(parents=True, exist_ok=True)
    for old in workdir.glob(f"c{concurrency}.*"):
        old.unlink()
    command = [
        binary,
        "-n",
        "-M",
        "prepared",
        "-f",
        str(CREATE_ORDER_SQL),
        "-c",
        str(concurrency),
        "-j",
        str(min(2, concurrency)),
        "-T",
        str(seconds),
        "-l",
        f"--log-prefix=c{concurrency}",
        database_url,
    ]
    done = run_timed(f"pgbench c={concurrency:<3} {seconds}s", command, seconds, cwd=workdir)
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", done.stdout, re.M)
    processed = re.search(r"^number of transactions actually processed: (\d+)", done.stdout, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", done.stdout, re.M)
    if done.returncode != 0 or tps is None or processed is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    latencies = _pgbench_latencies(workdir, concurrency)
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99]) if len(latencies) else (0, 0, 0)
    return PgbenchResult(
        concurrency=concurrency,
        seconds=seconds,
        transactions=int(processed.group(1)),
        failed=int(failed.group(1)) if failed else 0,
        tps=round(float(tps.group(1)), 1),
        p50_ms=round(float(p50), 2),
        p95_ms=round(float(p95), 2),
        p99_ms=round(float(p99), 2),
    )


def _pgbench_latencies(workdir: Path, concurrency: int) -> np.ndarray:
    """Per-transaction latencies (ms) from pgbench's -l logs: `client tx latency_us …`."""
    values: list[float] = []
    for log in workdir.glob(f"c{concurrency}.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]) / 1000)
    return np.array(values)


def raw_producer(
    client: Mapping[str, str], topic: str, messages: Sequence[Record]
) -> ProducerResult:
    """Produce every message as fast as the client takes them; wait for every acknowledgement.

    `client`: brokers and security, as the relay has them (the same principal)."""
    producer = Producer(producer_config(client, f"orders-bench-{socket.gethostname()}"))
    producer.list_topics(topic, timeout=10)  # metadata first, as a running relay has it
    outcome = {"delivered": 0, "failed": 0}

    def report(error: KafkaError | None, _: Message) -> None:
        outcome["failed" if error else "delivered"] += 1

    with step(f"raw producer: {len(messages):,} messages"):
        started = time.perf_counter()
        for index, (key, value, headers) in enumerate(messages):
            while True:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=report)
                    break
                except BufferError:
                    producer.poll(0.05)
            if index % 1000 == 0:
                producer.poll(0)
        remaining = producer.flush(120)
        seconds = time.perf_counter() - started
    if remaining:
        raise RuntimeError(f"the raw producer could not deliver {remaining} messages in 120 s")
    return ProducerResult(
        messages=outcome["delivered"],
        seconds=round(seconds, 2),
        events_per_s=round(outcome["delivered"] / seconds, 1),
        failed=outcome["failed"],
    )
