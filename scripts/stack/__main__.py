"""`python -m scripts.stack dev` runs the whole pipeline on loopback (what `make dev` calls).

Other commands: `infra` (only PostgreSQL and Kafka, until Ctrl-C), `fetch`
(resolve the Kafka jars now, e.g. in CI before the tests).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import urllib.request

from scripts.stack import infra, principals
from scripts.stack.kafka import fetch_jars
from scripts.stack.librdkafka import kcat_env
from scripts.stack.paths import free_port, port_is_free
from scripts.stack.processes import ManagedProcess, migrate
from scripts.stack.tokens import dev_auth
from scripts.stack.waiting import GiveUp, wait_for

SEED_CURL = """\
curl -sS -X POST http://localhost:{port}/api/v1/orders \\
  -H "Authorization: Bearer $(make -s token)" \\
  -H "Content-Type: application/json" \\
  -H "X-Request-ID: 550e8400-e29b-41d4-a716-446655440000" \\
  -d '{{"customer_id": "123e4567-e89b-12d3-a456-426614174000",
       "email": "customer@example.com",
       "items": [{{"product_id": "456e7890-e89b-12d3-a456-426614174001",
                  "name": "Test Product", "price": 49.99, "quantity": 3}}],
       "currency": "USD", "metadata": {{"source": "web"}},
       "shipping_address": {{"street": "Main St, 1", "city": "Minsk", "state": "MI",
                            "country": "BY", "zip_code": "220030"}},
       "billing_address": {{"street": "Main St, 1", "city": "Minsk", "state": "MI",
                           "country": "BY", "zip_code": "220030"}}}}'
"""


def _wait_for_ctrl_c(children: list[ManagedProcess]) -> None:
    """Block until SIGINT/SIGTERM, or until a child dies on its own."""
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    while not done.wait(0.5):
        crashed = [child for child in children if child.returncode is not None]
        if crashed:
            print(
                f"[stack] {crashed[0].name} exited with {crashed[0].returncode}; stopping",
                file=sys.stderr,
            )
            return


def _ready(port: int, children: list[ManagedProcess]) -> bool:
    """The whole pipeline is up: an order sent now is confirmed within moments."""
    for child in children:
        if child.returncode is not None:
            raise GiveUp(
                f"{child.name} exited with {child.returncode} during start-up (its output is above)"
            )
    by_name = {child.name: child for child in children}
    if not (
        by_name["relay"].said("relay started") and by_name["consumer"].said("partitions assigned")
    ):
        return False
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as response:
        return bool(response.status == 200)


def _identities(found: infra.Infra) -> str:
    """Where each principal's kcat settings and each process's database login are."""
    lines = []
    if found.kafka is not None:
        files = found.kafka.write_properties(found.kafka.root)
        prefix = " ".join(f"{k}={v}" for k, v in kcat_env().items())
        protocol = found.kafka.listener
        lines += [f"Kafka principals ({protocol}, SCRAM-SHA-512; README 'Security'), for kcat -F:"]
        lines += [f"  {path}" for path in files]
        example = found.kafka.root / f"{principals.FULFILLMENT}.properties"
        lines += [f"  e.g. {prefix + ' ' if prefix else ''}kcat -F {example} -L"]
    if found.postgres is not None:
        lines += ["PostgreSQL logins, one per process (psql <url>):"]
        lines += [
            f"  {name:<9}{found.process_env(name)['DATABASE_URL']}"
            for name in ("api", "relay", "consumer")
        ]
    return "\n".join(lines) + "\n\n" if lines else ""


def _api_port() -> int:
    """8080, unless something already listens there (then any free port, said loudly)."""
    if port_is_free(8080):
        return 8080
    port = free_port()
    print(
        f"[stack] port 8080 is taken (another `make dev`?): the API uses {port}",
        file=sys.stderr,
        flush=True,
    )
    return port


def _announce(http_port: int, found: infra.Infra, env: dict[str, str]) -> None:
    """Where everything runs, and the first request to send."""
    print(
        f"\nOrders is running: http://localhost:{http_port}  (docs: /schema/docs)\n"
        f"PostgreSQL: {found.database_url}\nKafka: {found.kafka_brokers}\n\n"
        f"Create an order:\n\n{SEED_CURL.format(port=http_port)}\n"
        f'Then: curl -sS -H "Authorization: Bearer $(make -s token)" '
        f"http://localhost:{http_port}/api/v1/orders/<id>\n"
        f"Metrics: http://127.0.0.1:{env['HTTP_METRICS_PORT']}/metrics (api)\n"
        f"{_identities(found)}"
        "(Ctrl-C stops everything)\n",
        flush=True,
    )


def dev() -> int:
    http_port = _api_port()
    with infra.running(
        "dev", preferred_ports={"postgres": 5432, "kafka": 9092, "controller": 9093}
    ) as found:
        env = {
            **found.env(),
            "HTTP_PORT": str(http_port),
            "LOG_FORMAT": "console",
            "RELAY_METRICS_PORT": str(free_port()),
            "CONSUMER_METRICS_PORT": str(free_port()),
            "HTTP_METRICS_PORT": str(free_port()),
            **dev_auth().env(),  # a local signing key under .state/auth/ (make token)
        }
        print("[stack] migrating the database", file=sys.stderr, flush=True)
        migrate(env)
        found.create_logins()
        children = [
            ManagedProcess.service(
                name,
                {**env, **found.process_env(name)},  # its own database user and Kafka principal
                sink=sys.stdout,
                colour=sys.stdout.isatty(),
            )
            for name in ("api", "relay", "consumer")
        ]
        for child in children:
            child.start()
        wait_for(
            lambda: _ready(http_port, children),
            timeout=120,
            what="the API to answer, the relay to start and the consumer to get its partitions",
        )
        _announce(http_port, found, env)
        try:
            _wait_for_ctrl_c(children)
        finally:
            print("\n[stack] stopping api, relay, consumer", file=sys.stderr, flush=True)
            for child in reversed(children):
                child.stop()
    return 0


def only_infra() -> int:
    with infra.running(
        "dev", preferred_ports={"postgres": 5432, "kafka": 9092, "controller": 9093}
    ) as found:
        admin = {} if found.kafka is None else found.kafka.process_env(principals.ADMIN)
        for key, value in {**found.env(), **admin}.items():  # as the admin: tools, not processes
            print(f"export {key}={value}", flush=True)
        _wait_for_ctrl_c([])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.stack", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["dev", "infra", "fetch"])
    command = parser.parse_args().command
    try:
        if command == "fetch":
            print(fetch_jars())
            return 0
        return dev() if command == "dev" else only_infra()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as failed:
        # One line that says what is wrong (GiveUp is a RuntimeError, WaitTimeout an
        # OSError); the servers' own logs, named in it, have the rest.
        reason = str(failed).strip().splitlines()[0] if str(failed).strip() else repr(failed)
        print(f"make {command}: {reason}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
