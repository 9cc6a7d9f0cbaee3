"""The three real processes (api, relay, consumer) for a test, with their logs in files."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.domain import examples
from scripts.stack.paths import free_port
from scripts.stack.processes import ManagedProcess
from scripts.stack.tokens import AUDIENCE, ISSUER, SigningKey
from scripts.stack.waiting import wait_for

SEED_ORDER: dict[str, Any] = examples.request_body()  # the seed README's order, as JSON


@dataclass
class Topics:
    orders: str
    dlq: str

    @property
    def fulfillment(self) -> str:
        """The default inbound topic for these (`<KAFKA_TOPIC>.fulfillment`)."""
        return f"{self.orders}.fulfillment"


# One signing key for the whole test session; each API process gets its public half.
SIGNING_KEY = SigningKey.generate()


def auth_env(directory: Path) -> dict[str, str]:
    """What an API process needs to check the session's tokens."""
    public = directory / "auth-public.pem"
    public.write_bytes(SIGNING_KEY.public_pem())
    return {
        "AUTH_PUBLIC_KEY_FILE": str(public),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "CURSOR_SECRET": secrets.token_urlsafe(48),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Pipeline:
    env: dict[str, str]
    log_dir: Path
    # process name -> what only that process gets: its database user, its Kafka principal
    identities: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    processes: dict[str, list[ManagedProcess]] = field(default_factory=dict)
    key: SigningKey = SIGNING_KEY

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    @property
    def port(self) -> int:
        return int(self.env["HTTP_PORT"])

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_METRICS_PORT']}/metrics"

    def client(self, timeout: float = 10, token: str | None = None) -> httpx.Client:
        """A client that sends `token`; by default a staff token (orders:admin), which
        reaches every customer's orders as the tests before authentication did."""
        headers = bearer(token if token is not None else self.key.admin())
        return httpx.Client(base_url=self.api_url, timeout=timeout, headers=headers)

    def customer_client(self, customer_id: str, timeout: float = 10) -> httpx.Client:
        return self.client(timeout, self.key.customer(customer_id))

    def start(self, name: str, extra_env: Mapping[str, str] | None = None) -> ManagedProcess:
        index = len(self.processes.setdefault(name, []))
        env = {**self.env, **self.identities.get(name, {}), **(extra_env or {})}
        process = ManagedProcess.service(name, env, log_path=self.log_dir / f"{name}-{index}.log")
        process.start()
        self.processes[name].append(process)
        if name == "api":
            wait_for(self._api_ready, timeout=90, what="the API to be ready")
        else:
            wait_for(
                lambda: self._logged(process, f"{name} started"),
                timeout=90,
                what=f"{name} to start",
            )
        return process

    def running(self, name: str) -> list[ManagedProcess]:
        return [p for p in self.processes.get(name, []) if p.returncode is None]

    def stop_all(self) -> dict[str, int | None]:
        """SIGTERM everything still running; return each process's exit code."""
        codes = {}
        for name, group in self.processes.items():
            for index, process in enumerate(group):
                if process.returncode is None:
                    codes[f"{name}-{index}"] = process.stop(timeout=30)
        return codes

    def order_status(self, order_id: str) -> str:
        with self.client() as client:
            response = client.get(f"/api/v1/orders/{order_id}")
            response.raise_for_status()
            return str(response.json()["order"]["status"])

    def wait_for_status(self, order_id: str, status: str, timeout: float = 30) -> None:
        wait_for(
            lambda: self.order_status(order_id) == status,
            timeout=timeout,
            what=f"order {order_id} to be {status}",
        )

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        lines = []
        for path in sorted(self.log_dir.glob(f"{name}-*.log")):
            for line in path.read_text().splitlines():
                if line.startswith("{"):
                    lines.append(json.loads(line))
        return lines

    def _logged(self, process: ManagedProcess, message: str) -> bool:
        if process.returncode is not None:
            raise RuntimeError(
                f"{process.name} exited with {process.returncode}: see {self.log_dir}"
            )
        assert process.log_path is not None
        text = process.log_path.read_text() if process.log_path.exists() else ""
        return f'"message":"{message}"' in text

    def _api_ready(self) -> bool:
        api = self.processes["api"][-1]
        if api.returncode is not None:
            raise RuntimeError(f"api exited with {api.returncode}: see {self.log_dir}")
        with self.client(timeout=2) as client:
            return client.get("/health/ready").status_code == 200


@contextmanager
def pipeline(
    database_url: str,
    brokers: str,
    topics: Topics,
    log_dir: Path,
    *,
    identities: Mapping[str, Mapping[str, str]],
    start: tuple[str, ...] = ("api", "relay", "consumer"),
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[Pipeline]:
    """`identities`: per process, its own DATABASE_URL and KAFKA_* (servers.identities);
    `database_url` and `brokers` are what the tests themselves use."""
    env = {
        "DATABASE_URL": database_url,
        "KAFKA_BROKERS": brokers,
        "KAFKA_TOPIC": topics.orders,
        "KAFKA_DLQ_TOPIC": topics.dlq,
        "KAFKA_GROUP_ID": f"group-{topics.orders}",  # as the `topics` fixture grants it
        "HTTP_PORT": str(free_port()),
        "HTTP_METRICS_PORT": str(free_port()),
        # One test principal sends everything: tests/e2e/test_edge.py proves the limiter.
        "RATE_LIMIT_PER_MINUTE": "0",
        "RELAY_METRICS_PORT": "0",
        "CONSUMER_METRICS_PORT": "0",
        "RELAY_POLL_INTERVAL": "0.2",
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        **auth_env(_mkdir(log_dir)),
        **(extra_env or {}),
    }
    log_dir.mkdir(parents=True, exist_ok=True)
    running = Pipeline(env, log_dir, identities)
    try:
        for name in start:
            running.start(name)
        yield running
    finally:
        running.stop_all()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
