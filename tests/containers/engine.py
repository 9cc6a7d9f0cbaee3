"""A Docker engine for the container tests: the one that answers, or a private one.

Order of preference:
1. `DOCKER_HOST`, or the default socket, when `docker version` answers there;
2. when none answers, `dockerd` is installed and we are root: a private daemon with its
   own socket, data root, exec root and pid file under a short temporary directory (a
   unix socket path must stay under 108 bytes), stopped by its PID afterwards, with the
   `docker0` bridge it created deleted (left alone when another daemon had made it);
3. otherwise no engine, and `Engine.skip_reason` says why.

The private daemon's data root is kept under .state/dockerd-data (a cache of images), so
a second run finds its stand-in images and build cache already there. One private daemon
at a time can use it: a second one fails to start, saying so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".state"


@dataclass
class Engine:
    """Where the engine is (`env` to pass to docker/compose), or why there is none."""

    env: dict[str, str] = field(default_factory=dict)
    private_pid: int | None = None
    skip_reason: str | None = None

    @property
    def available(self) -> bool:
        return self.skip_reason is None

    def docker(self, *args: str, check: bool = True, timeout: float = 600) -> str:
        done = subprocess.run(
            ["docker", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args)} failed:\n{done.stderr[-3000:]}")
        return done.stdout


def answers(env: dict[str, str], timeout: float = 10) -> bool:
    """Does `docker version` reach a server with this environment?"""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def _wait_until(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    alive: subprocess.Popen[bytes],
    log: Path,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            tail = log.read_text(errors="replace").splitlines()[-5:]
            raise RuntimeError(f"{what}: dockerd exited with {alive.returncode}: {tail}")
        if predicate():
            return
        time.sleep(0.5)
    raise RuntimeError(f"{what}: not ready within {timeout:.0f} s")


@contextlib.contextmanager
def docker_engine() -> Iterator[Engine]:
    """Yield an Engine; a private daemon started here is stopped here, by its PID."""
    env = dict(os.environ)
    if answers(env):
        yield Engine(env=env)
        return
    if os.environ.get("DOCKER_HOST"):
        yield Engine(skip_reason=f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None or shutil.which("docker") is None:
        yield Engine(skip_reason="no Docker engine answers and dockerd is not installed")
        return
    if os.geteuid() != 0:
        yield Engine(skip_reason="no Docker engine answers and a private dockerd needs root")
        return
    with _private_dockerd(dockerd) as engine:
        yield engine


@contextlib.contextmanager
def _private_dockerd(dockerd: str) -> Iterator[Engine]:
    short = Path(tempfile.mkdtemp(prefix="dk"))  # socket and exec root: short paths
    data_root = STATE / "dockerd-data"
    data_root.mkdir(parents=True, exist_ok=True)
    socket = short / "docker.sock"
    pidfile = short / "dockerd.pid"
    log_path = short / "dockerd.log"
    log = log_path.open("ab")
    # The bridge is ours to delete afterwards only if no other daemon made it already.
    bridge_existed = Path("/sys/class/net/docker0").exists()
    process = subprocess.Popen(
        [
            dockerd,
            "-H",
            f"unix://{socket}",
            "--data-root",
            str(data_root),
            "--exec-root",
            str(short / "exec"),
            "--pidfile",
            str(pidfile),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    env = dict(os.environ, DOCKER_HOST=f"unix://{socket}")
    try:
        _wait_until(lambda: answers(env, timeout=5), 60, "private dockerd", process, log_path)
        yield Engine(env=env, private_pid=process.pid)
    finally:
        _stop(process)
        if not bridge_existed:
            subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True, check=False)
        shutil.rmtree(short, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM by PID (dockerd stops its containers), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
