"""TEST_INFRA and the loopback guard on DATABASE_URL / KAFKA_BROKERS (tests/support/infra.py)."""

from __future__ import annotations

import pytest

from tests.support.infra import broker_hosts, chosen_infra, database_host, refuse_remote


@pytest.mark.parametrize(
    ("value", "expected"), [("local", "local"), (" Containers ", "containers")]
)
def test_test_infra_takes_either_name(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("TEST_INFRA", value)
    assert chosen_infra() == expected


@pytest.mark.parametrize("value", ["docker", "local;rm -rf /", "1"])
def test_a_wrong_test_infra_stops_with_the_choices(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TEST_INFRA", value)
    with pytest.raises(SystemExit, match="expected one of local, containers"):
        chosen_infra()


def test_without_test_infra_no_engine_means_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_INFRA", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert chosen_infra() == "local"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@127.0.0.1:5432/db",
        "postgresql+psycopg://u@localhost/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql:///db",
        "postgresql:///db?host=/var/run/postgresql",
    ],
)
def test_loopback_and_socket_databases_are_allowed(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.delenv("TEST_ALLOW_REMOTE", raising=False)
    refuse_remote("DATABASE_URL", [database_host(url)])


@pytest.mark.parametrize(
    ("name", "hosts"),
    [
        ("DATABASE_URL", [database_host("postgresql://u:p@db.example.com:5432/prod")]),
        ("DATABASE_URL", [database_host("postgresql://u:p@10.0.0.5/prod")]),
        ("DATABASE_URL", [database_host("postgresql:///db?host=db.example.com")]),
        ("KAFKA_BROKERS", broker_hosts("127.0.0.1:9092,kafka.example.com:9092")),
        ("KAFKA_BROKERS", broker_hosts("SASL_SSL://192.168.1.20:9093")),
    ],
)
def test_anything_not_on_loopback_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch, name: str, hosts: list[str]
) -> None:
    monkeypatch.delenv("TEST_ALLOW_REMOTE", raising=False)
    with pytest.raises(SystemExit, match=f"{name} names .* TEST_ALLOW_REMOTE=1"):
        refuse_remote(name, hosts)
    monkeypatch.setenv("TEST_ALLOW_REMOTE", "1")
    refuse_remote(name, hosts)


def test_broker_hosts_reads_every_broker() -> None:
    assert broker_hosts("localhost:9092, PLAINTEXT://127.0.0.1:19092,[::1]:9092") == [
        "localhost",
        "127.0.0.1",
        "::1",
    ]
