"""Stalls, not crashes: connections that go silent, relays frozen with SIGSTOP.

A TCP proxy of the test's own (tests/support/proxy.py) stands between one process
and PostgreSQL and holds its open connections without forwarding a byte, while new
connections pass; SIGSTOP freezes a relay as a VM pause would. Each scenario
measures how long until the fault was noticed and the work flowed again (the
`recovery s` column of the fault table), against the bounds the README promises
with the default settings: a held connection abandoned within 15 s, the backlog
flowing within 20 s, a frozen relay's shards moved within 15 s.
"""

from __future__ import annotations

import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg
import pytest

from scripts.stack.kafka import LocalKafka
from scripts.stack.paths import free_port, state_dir
from scripts.stack.principals import FULFILLMENT, TopicPlan
from scripts.stack.processes import ManagedProcess
from scripts.stack.waiting import wait_for
from tests.faults.conftest import Scenario, _scenario
from tests.support.pipeline import Topics
from tests.support.proxy import TcpProxy, target_of, tcp_proxy, url_through
from tests.support.servers import KafkaServer, PostgresServer

NOTICED_WITHIN = 15.0
FLOWING_WITHIN = 20.0
MOVED_WITHIN = 15.0
ABANDONED = "database connection abandoned: no answer"


def _now(url: str) -> datetime:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _count(url: str, sql: str, *args: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def _seconds_until(condition: Callable[[], bool], since: float, timeout: float, what: str) -> float:
    wait_for(condition, timeout=timeout, interval=0.2, what=what)
    return time.monotonic() - since


def _logged(scenario: Scenario, name: str, message: str) -> bool:
    return any(line.get("message") == message for line in scenario.pipeline.log_lines(name))


def _logged_times(scenario: Scenario, name: str, message: str) -> int:
    return sum(1 for line in scenario.pipeline.log_lines(name) if line.get("message") == message)


def _published_since(url: str, since: datetime) -> bool:
    return _count(url, "SELECT count(*) FROM outbox WHERE published_at > %s", since) > 0


def _confirmed_since(url: str, since: datetime) -> bool:
    sql = (
        "SELECT count(*) FROM order_status_history"
        " WHERE to_status = 'confirmed' AND changed_at > %s"
    )
    return _count(url, sql, since) > 0


def _working(url: str) -> None:
    """Wait until orders are being published and confirmed (each process has connected)."""
    wait_for(
        lambda: _count(url, "SELECT count(*) FROM orders WHERE status = 'confirmed'") >= 20,
        timeout=60,
        what="orders confirmed before the fault",
    )


def _accepted_at_least(scenario: Scenario, count: int) -> None:
    wait_for(
        lambda: scenario.load is not None and len(scenario.load.accepted) >= count,
        timeout=60,
        what=f"{count} orders accepted",
    )


def _relay_id(process: ManagedProcess) -> str:
    assert process.log_path is not None
    for line in process.log_path.read_text().splitlines():
        if '"message":"relay started"' in line:
            return str(line.split('"relay_id":"', 1)[1].split('"', 1)[0])
    raise AssertionError(f"{process.name} never said 'relay started'")


def _owned_by(url: str, relay_id: str) -> int:
    sql = "SELECT count(*) FROM relay_leases WHERE owner = %s AND expires_at > clock_timestamp()"
    return _count(url, sql, relay_id)


def _all_owned_without(url: str, relay_id: str) -> bool:
    sql = (
        "SELECT count(*) FROM relay_leases"
        " WHERE owner IS DISTINCT FROM %s AND owner IS NOT NULL AND expires_at > clock_timestamp()"
    )
    return _count(url, sql, relay_id) == 32


def _held_until_recovered(
    scenario: Scenario,
    proxy: TcpProxy,
    process: str,
    recovered: Callable[[str, datetime], bool],
    what: str,
    held_at_least: int = 1,
) -> tuple[float, float]:
    """Hold `process`'s open connections (through `proxy`) once its work flows: seconds
    until it says it gave up on them, and until `recovered` (work flowing on new ones)."""
    url = scenario.database_url
    _working(url)
    since = _now(url)
    assert proxy.hold_existing() >= held_at_least
    held = time.monotonic()
    noticed = _seconds_until(
        lambda: _logged(scenario, process, ABANDONED), held, 60, f"the {process} to give up"
    )
    return noticed, _seconds_until(lambda: recovered(url, since), held, 60, what)


def test_relay_to_postgres_held_is_abandoned_and_replaced(api_only_scenario: Scenario) -> None:
    scenario, url = api_only_scenario, api_only_scenario.database_url
    with tcp_proxy(*target_of(url)) as proxy:
        scenario.pipeline.start("consumer")
        scenario.pipeline.start("relay", {"DATABASE_URL": url_through(proxy, url)})
        scenario.send(total=600, rate=20)
        noticed, flowing = _held_until_recovered(  # its claims and marks, and its LISTEN
            scenario, proxy, "relay", _published_since, "the relay to publish again", 2
        )
        # Then everything held, new connections too, for 15 s: nothing can flow; once the
        # proxy lets go, the relay must not be found asleep in some long back-off.
        given_up = _logged_times(scenario, "relay", ABANDONED)
        proxy.hold_all()
        wait_for(
            lambda: _logged_times(scenario, "relay", ABANDONED) > given_up,
            timeout=30,
            what="the relay to give up on the second hold",
        )
        all_held = time.monotonic()
        wait_for(lambda: time.monotonic() - all_held >= 15, timeout=30, what="15 s all held")
        since = _now(url)
        proxy.release()
        released = time.monotonic()
        after_release = _seconds_until(
            lambda: _published_since(url, since), released, 60, "publishing after the release"
        )
        scenario.recovery = {
            "noticed": noticed,
            "flowing": flowing,
            "all held, flowing after release": after_release,
        }
        result = scenario.finish()
    assert result.clean, result
    assert noticed <= NOTICED_WITHIN, scenario.recovery
    assert flowing <= FLOWING_WITHIN, scenario.recovery
    assert after_release <= FLOWING_WITHIN, scenario.recovery


def test_consumer_to_postgres_held_is_abandoned_and_replaced(api_only_scenario: Scenario) -> None:
    scenario, url = api_only_scenario, api_only_scenario.database_url
    with tcp_proxy(*target_of(url)) as proxy:
        scenario.pipeline.start("relay")
        scenario.pipeline.start("consumer", {"DATABASE_URL": url_through(proxy, url)})
        scenario.send(total=600, rate=20)
        noticed, flowing = _held_until_recovered(
            scenario, proxy, "consumer", _confirmed_since, "confirmations to flow again"
        )
        scenario.recovery = {"noticed": noticed, "flowing": flowing}
        result = scenario.finish()
        proxy.release()
    assert result.clean, result
    assert noticed <= NOTICED_WITHIN, scenario.recovery
    assert flowing <= FLOWING_WITHIN, scenario.recovery


def test_consumer_to_postgres_all_held_flows_after_release(api_only_scenario: Scenario) -> None:
    """Every connection of the consumer's held, new ones too, until it has given up and
    then some: once the proxy lets go, it must not be found asleep in a long back-off."""
    scenario, url = api_only_scenario, api_only_scenario.database_url
    with tcp_proxy(*target_of(url)) as proxy:
        scenario.pipeline.start("relay")
        scenario.pipeline.start("consumer", {"DATABASE_URL": url_through(proxy, url)})
        scenario.send(total=500, rate=20)
        _working(url)
        assert proxy.hold_all() >= 1
        held = time.monotonic()
        noticed = _seconds_until(
            lambda: _logged(scenario, "consumer", ABANDONED), held, 60, "the consumer to give up"
        )
        # Held a little past its first give-up, so that it has retried into the silence.
        wait_for(lambda: time.monotonic() - held >= 20, timeout=30, what="20 s all held")
        since = _now(url)
        proxy.release()
        released = time.monotonic()
        after_release = _seconds_until(
            lambda: _confirmed_since(url, since), released, 60, "confirmations after the release"
        )
        scenario.recovery = {"noticed": noticed, "flowing after release": after_release}
        result = scenario.finish()
    assert result.clean, result
    assert noticed <= NOTICED_WITHIN, scenario.recovery
    assert after_release <= FLOWING_WITHIN, scenario.recovery


def _created_since(url: str, since: datetime) -> bool:
    return _count(url, "SELECT count(*) FROM orders WHERE created_at > %s", since) > 0


def test_api_to_postgres_held_is_abandoned_and_orders_keep_coming(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    kafka: KafkaServer,
    topics: Topics,
    tmp_path: Path,
) -> None:
    """The API's pooled connections held while new ones pass: the requests waiting on them
    fail with 503 (the load retries them with their idempotency keys) and the held
    connections are abandoned within the bound, while new connections take the orders."""
    url = database_url
    with (
        tcp_proxy(*target_of(url)) as proxy,
        _scenario(
            request, url, postgres, kafka, topics, tmp_path, ("relay", "consumer")
        ) as scenario,
    ):
        api_url = scenario.pipeline.identities["api"]["DATABASE_URL"]
        scenario.pipeline.start("api", {"DATABASE_URL": url_through(proxy, api_url)})
        scenario.send(total=600, rate=20)
        noticed, accepting = _held_until_recovered(
            scenario, proxy, "api", _created_since, "orders accepted again"
        )
        scenario.recovery = {"noticed": noticed, "accepting": accepting}
        result = scenario.finish()
        proxy.release()
    assert result.clean, result
    assert noticed <= NOTICED_WITHIN, scenario.recovery
    assert accepting <= FLOWING_WITHIN, scenario.recovery


def test_a_relay_frozen_for_45s_loses_its_shards_to_the_live_one(scenario: Scenario) -> None:
    url = scenario.database_url
    frozen = scenario.pipeline.processes["relay"][0]
    live = scenario.pipeline.start("relay")
    frozen_id, live_id = _relay_id(frozen), _relay_id(live)
    wait_for(lambda: _owned_by(url, live_id) == 16, timeout=30, what="the shards shared")
    scenario.send(total=1000, rate=20)
    _accepted_at_least(scenario, 40)
    frozen.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    since = _now(url)
    try:
        moved = _seconds_until(
            lambda: _all_owned_without(url, frozen_id), stopped, 60, "the shards to move"
        )
        # Orders keep flowing while it is frozen; 45 s as a long VM pause would.
        wait_for(
            lambda: time.monotonic() - stopped >= 45 and _published_since(url, since),
            timeout=90,
            what="45 s of publishing without the frozen relay",
        )
    finally:
        frozen.signal(signal.SIGCONT)
    woke = time.monotonic()
    rejoined = _seconds_until(
        lambda: _owned_by(url, frozen_id) == 16, woke, 60, "the woken relay to share again"
    )
    scenario.recovery = {"shards moved": moved, "rejoined": rejoined}
    result = scenario.finish()
    assert result.clean, result
    assert moved <= MOVED_WITHIN, scenario.recovery


def test_a_relay_frozen_mid_batch_is_fenced_when_it_wakes(scenario: Scenario) -> None:
    """Frozen under load (so most often between its claim and its commit) until its shards
    have moved, then woken: whatever it still sends must not reach a reader."""
    url = scenario.database_url
    zombie = scenario.pipeline.processes["relay"][0]
    live = scenario.pipeline.start("relay")
    zombie_id, live_id = _relay_id(zombie), _relay_id(live)
    wait_for(lambda: _owned_by(url, live_id) == 16, timeout=30, what="the shards shared")
    scenario.send(total=1500, rate=50)
    moves = []
    for freeze in range(2):
        _accepted_at_least(scenario, 150 + freeze * 600)
        zombie.signal(signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            moves.append(
                _seconds_until(
                    lambda: _all_owned_without(url, zombie_id), stopped, 60, "the shards to move"
                )
            )
        finally:
            zombie.signal(signal.SIGCONT)
        wait_for(lambda: _owned_by(url, zombie_id) == 16, timeout=60, what="the zombie to rejoin")
    fenced = sum(
        1
        for line in scenario.pipeline.log_lines("relay")
        if line.get("message") == "fenced: shards taken over by another relay"
    )
    scenario.recovery = {"shards moved (max)": max(moves), "fenced batches": float(fenced)}
    result = scenario.finish()
    assert result.clean, result
    assert max(moves) <= MOVED_WITHIN, scenario.recovery


@dataclass
class ProxiedKafka(LocalKafka):
    """A broker with a second listener whose advertised address is a proxy's: clients that
    bootstrap there reach every broker connection through the proxy; others use `bootstrap`."""

    client_port: int = 0
    proxy_port: int = 0

    def _write_config(self) -> Path:
        config = super()._write_config()
        # The CLIENT listener authenticates as the main one does (TLS, SCRAM, same users).
        protocol = self.listener if self.secured else "PLAINTEXT"
        main = f"listener.name.{protocol.lower()}."
        extra = {
            "listeners=": f",CLIENT://127.0.0.1:{self.client_port}",
            "advertised.listeners=": f",CLIENT://127.0.0.1:{self.proxy_port}",
            "listener.security.protocol.map=": f",CLIENT:{protocol}",
        }
        lines = []
        for line in config.read_text().splitlines():
            lines.append(line + next((t for head, t in extra.items() if line.startswith(head)), ""))
            if line.startswith(main):
                lines.append(line.replace(main, "listener.name.client.", 1))
        config.write_text("\n".join(lines) + "\n")
        return config


@contextmanager
def proxied_kafka() -> Iterator[tuple[KafkaServer, TcpProxy]]:
    """A broker of this test's own, and a proxy in front of its CLIENT listener."""
    root = state_dir(f"faults-kafka-{uuid.uuid4().hex[:8]}")
    client_port = free_port()
    with tcp_proxy("127.0.0.1", client_port) as proxy:
        broker = ProxiedKafka(
            root, free_port(), free_port(), client_port=client_port, proxy_port=proxy.port
        )
        broker.start()
        try:
            yield KafkaServer(broker.bootstrap, broker), proxy
        finally:
            broker.stop()
            shutil.rmtree(root, ignore_errors=True)


def _proxied_topics(kafka: KafkaServer) -> Topics:
    """This test's topics on its own broker, with each process's ACLs (as tests/conftest.py's
    `topics` fixture grants them on the shared one)."""
    name = f"orders-{uuid.uuid4().hex[:10]}"
    topics = Topics(orders=name, dlq=f"{name}.dlq")
    kafka.create_topics({topics.orders: 6, topics.dlq: 1, topics.fulfillment: 6})
    inbound = {FULFILLMENT: (topics.fulfillment,)}
    kafka.grant(TopicPlan(topics.orders, topics.dlq, f"group-{name}", inbound=inbound))
    return topics


def test_relay_to_kafka_held_is_given_up_and_replaced(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    tmp_path: Path,
) -> None:
    """The relay's connections to Kafka (producers, transaction coordinator) held."""
    url = database_url
    with proxied_kafka() as (kafka, proxy):
        topics = _proxied_topics(kafka)
        with _scenario(
            request, url, postgres, kafka, topics, tmp_path, ("api", "consumer")
        ) as scenario:
            scenario.pipeline.start("relay", {"KAFKA_BROKERS": f"127.0.0.1:{proxy.port}"})
            scenario.send(total=600, rate=20)
            _working(url)
            since = _now(url)
            assert proxy.hold_existing() >= 2
            held = time.monotonic()
            noticed = _seconds_until(
                lambda: _logged(scenario, "relay", "publish failed"), held, 60, "a failed commit"
            )
            flowing = _seconds_until(
                lambda: _published_since(url, since), held, 60, "the relay to publish again"
            )
            scenario.recovery = {"noticed": noticed, "flowing": flowing}
            result = scenario.finish()
            proxy.release()
    assert result.clean, result
    assert flowing <= FLOWING_WITHIN, scenario.recovery


def test_consumer_to_kafka_held_is_given_up_and_replaced(
    request: pytest.FixtureRequest,
    database_url: str,
    postgres: PostgresServer,
    tmp_path: Path,
) -> None:
    """The consumer's connections to Kafka (fetches, group coordinator) held while new ones
    pass: it must notice, rejoin its group through a new connection and confirm again."""
    url = database_url
    with proxied_kafka() as (kafka, proxy):
        topics = _proxied_topics(kafka)
        with _scenario(
            request, url, postgres, kafka, topics, tmp_path, ("api", "relay")
        ) as scenario:
            scenario.pipeline.start("consumer", {"KAFKA_BROKERS": f"127.0.0.1:{proxy.port}"})
            scenario.send(total=600, rate=20)
            _working(url)
            since = _now(url)
            assert proxy.hold_existing() >= 2
            held = time.monotonic()
            flowing = _seconds_until(
                lambda: _confirmed_since(url, since), held, 90, "confirmations to flow again"
            )
            scenario.recovery = {"flowing": flowing}
            result = scenario.finish()
            proxy.release()
    assert result.clean, result
    assert flowing <= FLOWING_WITHIN, scenario.recovery
