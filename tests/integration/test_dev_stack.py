"""`make dev`'s orchestration (scripts/stack): it fails fast and in one line, and what it
starts does not outlive it, however it is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from scripts.stack.kafka import check_tool, tool_major
from scripts.stack.paths import REPO, free_port
from scripts.stack.postgres import LocalPostgres
from scripts.stack.waiting import GiveUp, WaitTimeout, wait_for

PARENT = """
import sys, time
from scripts.stack.processes import ManagedProcess
child = ManagedProcess("api", [sys.executable, "-c", "import time; time.sleep(120)"], {})
child.start()
print(child.pid, flush=True)
time.sleep(120)
"""

# The orchestrator dies the moment the child exists: before setpriv has set its signal.
DIES_AT_ONCE = """
import os, signal, sys
from scripts.stack.processes import ManagedProcess
child = ManagedProcess("api", [sys.executable, "-c", "import time; time.sleep(120)"], {})
child.start()
print(child.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
RACES = 20


def gone(pid: int) -> bool:
    """Exited (reaped, or a zombie waiting for its new parent to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def orchestrator(script: str) -> tuple[subprocess.Popen[str], int]:
    """`script` run as an orchestrator, and the PID of the child it says it started."""
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    with parent.stdout:
        return parent, int(parent.stdout.readline())


def test_services_die_with_a_sigkilled_orchestrator() -> None:
    parent, child = orchestrator(PARENT)
    try:
        assert not gone(child), "the child should be running while its parent is"
        parent.kill()  # SIGKILL: no cleanup code of the orchestrator runs
        parent.wait(10)
        wait_for(partial(gone, child), timeout=10, interval=0.1, what="the orphan to exit")
    finally:
        if not gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_whose_orchestrator_dies_as_it_starts_does_not_outlive_it() -> None:
    """Before the fix about one start in ten lost this race and left the child running."""
    orphans = []
    for _ in range(RACES):
        parent, child = orchestrator(DIES_AT_ONCE)
        parent.wait(10)
        try:
            wait_for(partial(gone, child), timeout=10, interval=0.05, what="the orphan to exit")
        except WaitTimeout:
            orphans.append(child)
            os.kill(child, signal.SIGKILL)
    assert orphans == [], f"{len(orphans)} of {RACES} children outlived their orchestrator"


def test_a_postgres_that_dies_while_starting_fails_at_once(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg", free_port(), settings={"shared_buffers": "lots"})
    started = time.monotonic()
    with pytest.raises(GiveUp, match=r"PostgreSQL exited with \d+ while starting: .*shared_buff"):
        server.start(timeout=60)
    assert time.monotonic() - started < 30, "it must not wait out its 60 s timeout"


@pytest.mark.parametrize(
    ("java", "line"),
    [
        (
            None,
            "java not found: Java runs the Kafka broker"
            " (Debian: apt install openjdk-17-jre-headless)",
        ),
        (
            'openjdk version "11.0.20"',
            "java 11 is too old: 17+ is needed (Java runs the Kafka broker)",
        ),
        (
            'openjdk version "17.0.15"',
            "mvn not found: Maven resolves Kafka's jars; or set KAFKA_HOME"
            " (Debian: apt install maven)",
        ),
    ],
    ids=["no java", "old java", "no maven"],
)
def test_make_infra_says_in_one_line_what_tool_is_missing(
    tmp_path: Path, java: str | None, line: str
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    if java is not None:
        (tools / "java").write_text(f"#!/bin/sh\necho '{java}' >&2\n")
        (tools / "java").chmod(0o755)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "scripts.stack", "infra"],
        cwd=REPO,
        env={
            "PATH": str(tools),  # nothing else: /bin has the real java and mvn
            "PYTHONPATH": str(REPO),
            "ORDERS_STATE_DIR": str(tmp_path / "state"),  # no cached jars: Maven is needed
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",  # never contacted
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"make infra: {line}"]
    assert time.monotonic() - started < 20, "before anything is started or waited for"


@pytest.mark.parametrize(
    ("says", "major"),
    [('openjdk version "11.0.20" 2023-07-18', 11), ('java version "1.8.0_292"', 8)],
)
def test_an_old_java_is_named_with_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, says: str, major: int
) -> None:
    fake = tmp_path / "java"
    fake.write_text(f"#!/bin/sh\necho '{says}' >&2\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert tool_major("java") == major
    with pytest.raises(RuntimeError, match=f"java {major} is too old: 17\\+ is needed"):
        check_tool("java", 17, "openjdk-17-jre-headless", "Java runs the Kafka broker")


def test_this_machines_java_and_maven_are_recent_enough() -> None:
    assert (tool_major("java") or 0) >= 17
    assert (tool_major("mvn") or 0) >= 3
