"""Fault scenarios: real processes, real PostgreSQL and Kafka, killed and restarted for real.

Each scenario gets a fresh database and topics, drives a stream of orders
through the three processes while it does damage, waits for the dust to
settle, and audits the end state. `make test-faults` prints a table of them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scripts.stack.paths import state_dir
from tests.faults.audit import Audit, audit, settle
from tests.faults.load import OrderLoad
from tests.support.pipeline import Pipeline, Topics
from tests.support.servers import KafkaServer, PostgresServer, running

RESULTS: list[dict[str, object]] = []
FAULT_ENV = {
    "KAFKA_SESSION_TIMEOUT_MS": "3000",  # a killed consumer's partitions move on quickly
    "RELAY_BATCH_SIZE": "50",  # small batches: kills land between produce and mark more often
    "CONSUMER_BATCH_SIZE": "50",
}


@dataclass
class Scenario:
    name: str
    pipeline: Pipeline
    database_url: str
    topics: Topics
    postgres: PostgresServer
    kafka: KafkaServer
    started: float = field(default_factory=time.monotonic)
    kills: int = 0
    restarts: int = 0
    load: OrderLoad | None = None
    recovery: dict[str, float] = field(default_factory=dict)  # what recovered, seconds after

    def send(self, total: int, rate: float) -> OrderLoad:
        self.load = OrderLoad(self.pipeline.api_url, total=total, rate=rate).start()
        return self.load

    def restart(self, name: str, index: int = -1) -> None:
        """SIGKILL a process mid-flight and start a fresh one in its place."""
        self.pipeline.processes[name][index].kill()
        self.kills += 1
        self.pipeline.start(name)
        self.restarts += 1

    def finish(
        self, expected_status: dict[str, str] | None = None, settle_timeout: float = 180
    ) -> Audit:
        assert self.load is not None
        self.load.wait(timeout=300)
        assert not self.load.failures, self.load.failures[:5]
        settle(self.database_url, settle_timeout)
        result = audit(
            self.database_url,
            self.kafka.client_config(),
            self.topics.orders,
            self.topics.dlq,
            set(self.load.accepted.values()),
            expected_status,
        )
        exits = self.pipeline.stop_all()
        leftovers = {name: code for name, code in exits.items() if code != 0}
        RESULTS.append(
            {
                "scenario": self.name,
                "orders": len(self.load.accepted),
                "kills/restarts": f"{self.kills}/{self.restarts}",
                "lost": len(result.lost),
                "doubled": len(result.doubled),
                "order violations": len(result.order_violations),
                "dupes on Kafka": result.duplicates_on_kafka,
                "redelivered": self._redelivered(),
                "DLQ": len(result.dlq),
                "recovery s": ", ".join(f"{k} {v:.1f}" for k, v in self.recovery.items()) or "-",
                "wall s": round(time.monotonic() - self.started, 1),
            }
        )
        assert not leftovers, f"processes did not exit cleanly on SIGTERM: {leftovers}"
        return result

    def _redelivered(self) -> int:
        """Events the consumers read again and recognised (no effect the second time)."""
        lines = self.pipeline.log_lines("consumer")
        return sum(1 for line in lines if line.get("message") == "event duplicate")


@contextmanager
def _scenario(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    kafka: KafkaServer,
    topics: Topics,
    tmp_path: Path,
    start: tuple[str, ...],
) -> Iterator[Scenario]:
    with running(
        postgres, database_url, kafka, topics, tmp_path / "logs", start=start, extra_env=FAULT_ENV
    ) as found:
        yield Scenario(request.node.name, found, database_url, topics, postgres, kafka)


@pytest.fixture
def scenario(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    kafka: KafkaServer,
    topics: Topics,
    tmp_path: Path,
) -> Iterator[Scenario]:
    with _scenario(
        request, database_url, postgres, kafka, topics, tmp_path, ("api", "relay", "consumer")
    ) as running:
        yield running


@pytest.fixture
def api_only_scenario(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    kafka: KafkaServer,
    topics: Topics,
    tmp_path: Path,
) -> Iterator[Scenario]:
    """Only the API runs: the test starts relays and consumers as it needs them."""
    with _scenario(request, database_url, postgres, kafka, topics, tmp_path, ("api",)) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RESULTS:
        return
    columns = list(RESULTS[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in RESULTS)) for c in columns}
    terminalreporter.write_sep("=", "fault scenarios")
    terminalreporter.write_line(" | ".join(c.ljust(widths[c]) for c in columns))
    for row in RESULTS:
        terminalreporter.write_line(" | ".join(str(row[c]).ljust(widths[c]) for c in columns))
    report = state_dir() / "fault-report.json"
    report.write_text(json.dumps(RESULTS, indent=2))
    terminalreporter.write_line(f"(also written to {report})")
