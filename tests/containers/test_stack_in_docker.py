"""The real compose.yaml on a real Docker engine, driven the way a user drives it.

`make up` -> every service healthy -> the seed order confirmed -> `make down` ->
`make up`: the order is still there (volumes) -> the relay's container SIGKILLed under a
small load: its restart policy brings it back, and the audit (database and, through
kcat as `orders-admin`, the topic) finds nothing lost and nothing doubled -> the broker
refuses a client without credentials, a wrong password, and `fulfillment` on `orders`
(with the kcat file `kafka_init properties` prints, which works on `orders.fulfillment`)
-> `make down`.

Kafka runs as compose.yaml has it: SASL SCRAM-SHA-512 with ACLs, the users and ACLs
made by the kafka-init job, each process its own principal.

The engine is whichever answers (DOCKER_HOST or the default socket), else a private
dockerd when we are root (tests/containers/engine.py), else the test is skipped, saying
why. Images a registry cannot give are replaced by the stand-ins of
tests/containers/standins/ (their output names which). Kafka UI is left out: no
stand-in for it (docs/containers.md). Progress is printed as it happens.

The stack runs as its own Compose project with its own `--env-file`, on free loopback
ports, so neither a developer's `.env` nor their `make up` stack is touched; its
volumes are removed at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from scripts.stack import kafka_init, principals
from scripts.stack.librdkafka import kcat_env
from scripts.stack.paths import free_port
from scripts.stack.tokens import dev_auth
from scripts.stack.waiting import wait_for
from tests.faults.audit import audit, settle
from tests.faults.load import OrderLoad
from tests.support.pipeline import SEED_ORDER, bearer

from .engine import Engine, docker_engine
from .readers import REPO, compose_command

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]

# Everything but kafka-ui, which has no stand-in (see the module docstring).
SERVICES = ("postgres", "kafka", "kafka-init", "migrate", "api", "relay", "consumer")
LONG_RUNNING = ("postgres", "kafka", "api", "relay", "consumer")
ONE_SHOT = ("migrate", "kafka-init")
TOPIC, DLQ_TOPIC = "orders", "orders.dlq"  # compose.yaml's defaults

Say = Callable[[str], None]


def staff_token() -> str:
    """A staff token signed with the local key that `make up` mounts into the api (the
    same one `make token ROLE=admin` prints)."""
    return dev_auth().key.admin()


def auth_headers() -> dict[str, str]:
    """The one place a request of this test gets its credentials."""
    return bearer(staff_token())


@dataclass
class Stack:
    """One Compose project of compose.yaml, driven through the Makefile's targets."""

    engine: Engine
    project: str
    env_file: Path
    ports: dict[str, int]
    password: str
    kafka_passwords: dict[str, str]  # principal -> password, as kafka-init made them

    @property
    def compose(self) -> list[str]:
        return [*compose_command(), "-p", self.project, "--env-file", str(self.env_file)]

    @property
    def env(self) -> dict[str, str]:
        """Nothing from the caller's environment that compose.yaml could interpolate."""
        keep = ("PATH", "HOME", "LANG", "TMPDIR", "DOCKER_HOST", "DOCKER_CONFIG")
        return {key: self.engine.env[key] for key in keep if key in self.engine.env}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['HTTP_PORT']}"

    @property
    def database_url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.ports['DB_PORT']}/orders"

    @property
    def brokers(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA_PORT']}"

    def kafka_client(self, principal: str = principals.ADMIN) -> dict[str, str]:
        """librdkafka settings for `principal` on the published (EXTERNAL) listener."""
        return principals.client_config(self.brokers, principal, self.kafka_passwords[principal])

    def make(self, target: str) -> str:
        """`make <target>` in the checkout with this project's Compose command; its output."""
        done = subprocess.run(
            [
                "make",
                "--no-print-directory",
                "-C",
                str(REPO),
                target,
                f"COMPOSE={' '.join(self.compose)}",
                f"UP_SERVICES={' '.join(SERVICES)}",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-4000:]}{done.stderr}"
        return done.stdout

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [*self.compose, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"compose {args} failed:\n{done.stderr}"
        return done.stdout

    def state(self, service: str) -> dict[str, Any]:
        """The service's container's State (and RestartCount), from the engine."""
        container = self.run("ps", "-q", service).strip()
        if not container:
            return {}
        found = json.loads(self.engine.docker("inspect", container))[0]
        return {**found["State"], "RestartCount": found["RestartCount"]}

    def host_config(self, service: str) -> dict[str, Any]:
        container = self.run("ps", "-q", service).strip()
        config: dict[str, Any] = json.loads(self.engine.docker("inspect", container))[0][
            "HostConfig"
        ]
        return config

    def logs(self, service: str) -> str:
        return self.run("logs", "--no-color", "--tail=40", service)

    def wait_healthy(self, timeout: float) -> None:
        """Every long-running service healthy, every one-shot job exited 0; fail fast
        (with its logs) when a container exits that should not, or a job fails."""

        def ready() -> bool:
            done = True
            for service in ONE_SHOT:
                state = self.state(service)
                if state.get("Status") == "exited" and state["ExitCode"] != 0:
                    raise AssertionError(f"{service} failed:\n{self.logs(service)}")
                done = done and state.get("Status") == "exited"
            for service in LONG_RUNNING:
                state = self.state(service)
                if state.get("Status") == "exited":
                    raise AssertionError(f"{service} exited:\n{self.logs(service)}")
                done = done and state.get("Health", {}).get("Status") == "healthy"
            return done

        wait_for(ready, timeout=timeout, interval=1, what="every service healthy")

    def health_line(self) -> str:
        parts = [f"{s} {self.state(s).get('Health', {}).get('Status')}" for s in LONG_RUNNING]
        parts += [f"{s} exited {self.state(s).get('ExitCode')}" for s in ONE_SHOT]
        return ", ".join(parts)


@pytest.fixture(scope="module")
def say(pytestconfig: pytest.Config) -> Say:
    """Print progress as it happens, past pytest's output capture."""
    capture = pytestconfig.pluginmanager.getplugin("capturemanager")
    started = time.monotonic()

    def printer(message: str) -> None:
        with capture.global_and_fixture_disabled():
            print(f"[containers +{time.monotonic() - started:5.0f}s] {message}", flush=True)

    return printer


@pytest.fixture(scope="module")
def engine(say: Say) -> Iterator[Engine]:
    with docker_engine() as found:
        if not found.available:
            pytest.skip(f"container test: {found.skip_reason}")
        how = f"private dockerd (pid {found.private_pid})" if found.private_pid else "as found"
        version = found.docker("version", "--format", "{{.Server.Version}}").strip()
        say(f"Docker engine {version}, {how}, at {found.env.get('DOCKER_HOST', 'default socket')}")
        yield found
    if found.private_pid:
        say(f"stopped the private dockerd (pid {found.private_pid})")


@pytest.fixture(scope="module")
def images(engine: Engine, say: Say) -> dict[str, str]:
    """Real images where present or pullable, stand-ins otherwise: {image: 'real'|key}."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.containers.standins.build"],
        cwd=REPO,
        env={**engine.env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"building the stand-ins failed:\n{done.stderr[-4000:]}"
    kinds = {}
    for image in ("postgres:17", "apache/kafka:4.2.0", "python:3.11-slim-bookworm"):
        label = engine.docker(
            "image", "inspect", "-f", '{{index .Config.Labels "orders.standin"}}', image
        ).strip()
        kinds[image] = "real" if label in {"", "<no value>"} else f"stand-in {label}"
    say(f"images ready in {time.monotonic() - started:.0f} s: {kinds}")
    return kinds


@pytest.fixture
def stack(engine: Engine, images: dict[str, str], tmp_path: Path) -> Iterator[Stack]:
    ports = {name: free_port() for name in ("HTTP_PORT", "DB_PORT", "KAFKA_PORT", "KAFKA_UI_PORT")}
    password = secrets.token_urlsafe(16)
    env_file = tmp_path / "compose.env"
    # The owner's password, and each process's own database login's (compose.yaml has no
    # defaults for any of them).
    logins = {
        f"DB_{process}_PASSWORD": secrets.token_urlsafe(16)
        for process in ("API", "RELAY", "CONSUMER")
    }
    # …and each Kafka principal's (made by kafka-init; no defaults either).
    kafka = {principal: secrets.token_hex(24) for principal in kafka_init.PASSWORD_VARIABLES}
    settings = {
        **ports,
        "DB_PASSWORD": password,
        **logins,
        **{kafka_init.PASSWORD_VARIABLES[name]: value for name, value in kafka.items()},
        "KAFKA_SESSION_TIMEOUT_MS": "6000",
    }
    env_file.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    project = f"orders-ctest-{uuid.uuid4().hex[:8]}"
    created = Stack(engine, project, env_file, ports, password, kafka)
    try:
        yield created
    finally:  # whatever happened: no containers, no volumes, no network left behind
        subprocess.run(
            [*created.compose, "down", "--volumes", "--remove-orphans", "--timeout", "10"],
            cwd=REPO,
            env=created.env,
            capture_output=True,
            timeout=300,
            check=False,
        )


def order_of(stack: Stack, order_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{stack.api_url}/api/v1/orders/{order_id}", headers=auth_headers(), timeout=10
    )
    response.raise_for_status()
    order: dict[str, Any] = response.json()["order"]
    return order


def check_own_logins(stack: Stack, say: Say) -> None:
    """api, relay and consumer are logged in to PostgreSQL as their own users, and no
    one else is but, at most, the owner (postgres's own health probe, for a moment)."""
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT DISTINCT usename FROM pg_stat_activity"
            " WHERE datname = 'orders' AND pid <> pg_backend_pid()"
        ).fetchall()
    logins = {user for (user,) in rows}
    own = {"orders_api_user", "orders_relay_user", "orders_consumer_user"}
    assert own <= logins <= {*own, "postgres"}, logins
    logins &= own
    say(f"api, relay, consumer are connected to PostgreSQL as their own logins: {sorted(logins)}")


def refusal(client: dict[str, str]) -> str:
    """How the broker answers a metadata request from `client`: '' if it is served, else
    the errors the client saw (a refused or unauthenticated client gets no topic list)."""
    seen: list[str] = []
    admin = AdminClient({**client, "log_level": "0", "error_cb": lambda e: seen.append(str(e))})
    try:
        admin.list_topics(timeout=8)
    except KafkaException as exc:
        for _ in range(10):  # error events are served by poll(), not by list_topics()
            if seen:
                break
            admin.poll(0.5)
        return " | ".join([str(exc.args[0]), *seen])
    return ""


def kcat_as(properties: Path, topic: str) -> subprocess.CompletedProcess[bytes]:
    """One record to `topic` with `kcat -F properties` (the file a user is told to make)."""
    return subprocess.run(
        [shutil.which("kcat") or "kcat", "-F", str(properties), "-P", "-t", topic, "-c", "1"],
        input=b"{}",
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, **kcat_env()},  # a librdkafka whose SCRAM Kafka 4 accepts
    )


def check_kafka_refuses_strangers(stack: Stack, say: Say) -> None:
    """Without a login, with a wrong password, or as `fulfillment` on `orders`: refused.
    The kcat file for fulfillment is printed the way docs/containers.md says."""
    anonymous = refusal({"bootstrap.servers": stack.brokers})
    assert anonymous, "a client without credentials was served metadata"
    wrong = refusal({**stack.kafka_client(principals.RELAY), "sasl.password": "wrong" * 8})
    assert "_AUTHENTICATION" in wrong, wrong
    assert refusal(stack.kafka_client(principals.RELAY)) == ""  # the right one is served
    done = subprocess.run(
        [sys.executable, "-m", "scripts.stack.kafka_init", "properties", principals.FULFILLMENT,
         "--env-file", str(stack.env_file), "--brokers", stack.brokers],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    properties = stack.env_file.with_name("fulfillment.properties")
    properties.write_text(done.stdout)
    refused = kcat_as(properties, TOPIC)
    assert refused.returncode != 0 and b"Topic authorization failed" in refused.stderr, refused
    allowed = kcat_as(properties, f"{TOPIC}.fulfillment")
    assert allowed.returncode == 0, allowed.stderr
    say(
        "Kafka: no credentials refused, a wrong password refused, fulfillment's kcat file "
        f"refused on {TOPIC} (TopicAuthorizationFailed) and accepted on {TOPIC}.fulfillment"
    )


def test_make_up_keeps_orders_and_survives_a_killed_relay(stack: Stack, say: Say) -> None:
    started = time.monotonic()
    summary = stack.make("up")
    say(f"make up done in {time.monotonic() - started:.0f} s; it printed:")
    for line in summary.splitlines()[-9:]:
        say(f"    {line}")
    stack.wait_healthy(timeout=240)
    say(f"healthy: {stack.health_line()}")
    for service in ("api", "relay", "consumer"):
        config = stack.host_config(service)
        assert config["ReadonlyRootfs"] and config["CapDrop"] == ["ALL"], service
        assert "no-new-privileges:true" in config["SecurityOpt"], service
        assert config["Memory"] > 0 and config["PidsLimit"] > 0, service
    wrote = stack.engine.docker(
        "exec", stack.run("ps", "-q", "api").strip(), "sh", "-c", "touch /app/x 2>&1; echo $?"
    )
    assert "Read-only file system" in wrote and not wrote.strip().endswith("\n0"), wrote
    say("api, relay, consumer: read-only root, no capabilities, no-new-privileges, limits")

    created = httpx.post(
        f"{stack.api_url}/api/v1/orders", json=SEED_ORDER, headers=auth_headers(), timeout=10
    )
    assert created.status_code == 201, created.text
    seed = created.json()["order"]
    wait_for(
        lambda: order_of(stack, seed["id"])["status"] == "confirmed",
        timeout=90,
        what="the seed order confirmed",
    )
    say(f"seed order {seed['id']} created and confirmed (total {seed['total_amount']})")
    check_own_logins(stack, say)

    stack.make("down")
    assert stack.run("ps", "-q").strip() == "", "make down left containers running"
    say("make down: no containers left (volumes kept)")
    started = time.monotonic()
    stack.make("up")
    stack.wait_healthy(timeout=240)
    again = order_of(stack, seed["id"])
    assert (again["status"], again["total_amount"]) == ("confirmed", seed["total_amount"])
    say(f"make up again in {time.monotonic() - started:.0f} s: the seed order is still confirmed")

    load = OrderLoad(api_url=stack.api_url, total=120, rate=12, token=staff_token()).start()
    wait_for(lambda: load.sent >= 30, timeout=60, what="30 orders sent")
    before = stack.state("relay")
    os.kill(before["Pid"], signal.SIGKILL)  # as the OOM killer would: not `docker stop`
    say(f"SIGKILLed the relay's process (pid {before['Pid']}) after {load.sent} orders")

    def restarted() -> bool:
        now = stack.state("relay")
        return now.get("RestartCount", 0) > before["RestartCount"] and now.get("Running", False)

    wait_for(restarted, timeout=60, interval=0.5, what="the relay restarted by its policy")
    say(f"the relay's container restarted (restart count {stack.state('relay')['RestartCount']})")
    load.wait(timeout=180)
    assert not load.failures, load.failures[:5]
    stack.wait_healthy(timeout=120)
    settle(stack.database_url, timeout=120)
    result = audit(
        stack.database_url,
        stack.kafka_client(principals.ADMIN),  # the admin reads every topic
        TOPIC,
        DLQ_TOPIC,
        accepted={*load.accepted.values(), seed["id"]},
    )
    say(
        f"audit: {result.orders} orders, {len(result.lost)} lost, {len(result.doubled)} doubled, "
        f"{len(result.unconfirmed)} unconfirmed, {len(result.order_violations)} out of order; "
        f"{result.kafka_records} records on the topic ({result.duplicates_on_kafka} redelivered)"
    )
    assert result.orders == len(load.accepted) + 1
    assert result.clean, result
    assert result.dlq == []
    check_kafka_refuses_strangers(stack, say)

    stack.make("down")
    assert stack.run("ps", "-q").strip() == ""
    say("make down: stopped")


def test_the_standins_refuse_what_the_official_images_refuse(
    engine: Engine, images: dict[str, str], say: Say
) -> None:
    """A stand-in that accepted more than the real image would prove too much."""
    refusals = [  # (image, `docker run` arguments, what the real image says)
        ("postgres:17", [], "superuser password is not specified"),
        ("apache/kafka:4.2.0", ["-e", "KAFKA_NODE_ID=1"], "CLUSTER_ID is required"),
    ]
    for image, arguments, refusal in refusals:
        if images[image] == "real":
            continue
        done = subprocess.run(
            ["docker", "run", "--rm", *arguments, image],
            env=engine.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode != 0, image
        assert refusal in done.stderr, image
    say("stand-ins refuse a missing POSTGRES_PASSWORD and a missing CLUSTER_ID")
