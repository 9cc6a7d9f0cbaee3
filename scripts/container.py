"""The container image's entrypoint: its command names the process to run.

    api        python -m app          (the HTTP API; the image's default)
    relay      python -m relay
    consumer   python -m consumer     (`consumer replay-dlq …` passes its arguments on)
    migrate    alembic upgrade head   (`migrate history`, `migrate current`: other alembic commands)
    init-db    migrate, then create each process's login (scripts/stack/logins.py; compose's job)
    kafka-init topics, SCRAM users, ACLs on the broker (scripts/stack/kafka_init.py; compose's job)
    healthcheck [api|relay|consumer]  exit 0 if that process answers over HTTP on loopback:
               the API's /health/live (the image's HEALTHCHECK), the others' /metrics

Anything else runs as given (`docker run … IMAGE sh`). The process replaces this
one (exec), so it is PID 1 and receives SIGTERM itself: draining is its own job.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ALEMBIC = ["-m", "alembic", "-c", str(ROOT / "alembic.ini")]
ROLES: dict[str, list[str]] = {
    "api": ["-m", "app"],
    "relay": ["-m", "relay"],
    "consumer": ["-m", "consumer"],
    "migrate": [*ALEMBIC, "upgrade", "head"],
    "init-db": ["-m", "scripts.stack.logins"],
    "kafka-init": ["-m", "scripts.stack.kafka_init"],
}
PROBES = {"api": "/health/live", "relay": "/metrics", "consumer": "/metrics"}
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def command(argv: list[str]) -> list[str]:
    """The program and arguments that the container's command `argv` stands for."""
    role, *rest = argv or ["api"]
    if role == "migrate" and rest:
        return [sys.executable, *ALEMBIC, *rest]
    if role in ROLES:
        return [sys.executable, *ROLES[role], *rest]
    return argv


def healthcheck(role: str = "api", timeout: float = 3.0) -> int:
    """0 when `role`'s HTTP endpoint in this container answers 200, 1 otherwise."""
    if role not in PROBES:
        print(f"healthcheck: no check for {role!r} ({', '.join(PROBES)})", file=sys.stderr)
        return 1
    from app import config  # noqa: PLC0415 - the same settings the process started with

    try:
        settings = config.load()
    except config.ConfigError as exc:
        print(f"healthcheck: configuration error: {exc}", file=sys.stderr)
        return 1
    if role == "api":
        host, port = settings.http.host, settings.http.port
    else:  # relay and consumer serve /metrics on METRICS_HOST
        host = settings.metrics_host
        port = (settings.relay if role == "relay" else settings.consumer).metrics_port
    if not port:
        print(f"healthcheck: {role} serves no metrics (port 0): nothing to probe")
        return 0
    url = f"http://{'127.0.0.1' if host in WILDCARDS else host}:{port}{PROBES[role]}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {url}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str]) -> None:
    if argv[:1] == ["healthcheck"]:
        sys.exit(healthcheck(argv[1] if len(argv) > 1 else "api"))
    program = command(argv)
    try:
        os.execvp(program[0], program)
    except OSError as exc:
        sys.exit(f"container: cannot run {program[0]!r}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
