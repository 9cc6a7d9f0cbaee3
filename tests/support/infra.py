"""Where a test session's PostgreSQL and Kafka come from: TEST_INFRA and the guard
against pointing the tests at a server that is not on this machine.

TEST_INFRA=local       PostgreSQL and Kafka as local processes (what `make dev` runs);
TEST_INFRA=containers  the same images compose.yaml uses, through testcontainers-python,
                       on the Docker engine that answers, else a private dockerd (root);
unset                  containers when a Docker engine answers, else local.

DATABASE_URL / KAFKA_BROKERS, when set, name servers to use instead: the tests create
and drop databases and topics there, so they must be on loopback unless
TEST_ALLOW_REMOTE=1 says that is meant.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Literal
from urllib.parse import urlsplit

Infra = Literal["local", "containers"]
CHOICES: tuple[Infra, ...] = ("local", "containers")


def chosen_infra() -> Infra:
    """TEST_INFRA, or the default for this machine; a wrong value stops the session."""
    value = os.environ.get("TEST_INFRA", "").strip().lower()
    if value == "local":
        return "local"
    if value == "containers":
        return "containers"
    if value:
        raise SystemExit(f"TEST_INFRA={value!r}: expected one of {', '.join(CHOICES)}")
    from tests.containers.engine import answers

    return "containers" if answers(dict(os.environ), timeout=5) else "local"


def is_loopback(host: str) -> bool:
    """True when every address `host` resolves to is a loopback address."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def database_host(url: str) -> str:
    """The URL's host; no host (or a socket directory) is libpq's unix socket: local."""
    parts = urlsplit(url.replace("+psycopg", ""))
    if parts.hostname:
        return parts.hostname
    query = dict(item.partition("=")[::2] for item in parts.query.split("&") if item)
    host = query.get("host", "")
    return "localhost" if not host or host.startswith("/") else host


def broker_hosts(brokers: str) -> list[str]:
    hosts = []
    for broker in brokers.split(","):
        address = broker.strip().split("://")[-1]
        host = address.rsplit(":", 1)[0] if ":" in address else address
        hosts.append(host.strip("[]"))
    return hosts


def refuse_remote(name: str, hosts: list[str]) -> None:
    """Stop unless every host is loopback or TEST_ALLOW_REMOTE=1."""
    if os.environ.get("TEST_ALLOW_REMOTE") == "1":
        return
    remote = [host or "(no host)" for host in hosts if not is_loopback(host)]
    if remote:
        raise SystemExit(
            f"{name} names {', '.join(remote)}, not this machine: the tests create and drop "
            "databases and topics there. Set TEST_ALLOW_REMOTE=1 if that is what you want."
        )
