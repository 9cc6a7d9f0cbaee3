"""Our three processes (and migrations) as children: started, labelled, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from scripts.stack.lifetime import die_with_parent
from scripts.stack.paths import REPO

SEEN_LINES = 500
COLOURS = {"api": "\033[36m", "relay": "\033[35m", "consumer": "\033[33m"}
RESET = "\033[0m"

COMMANDS: dict[str, list[str]] = {
    "api": ["-m", "app"],
    "relay": ["-m", "relay"],
    "consumer": ["-m", "consumer"],
}


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO,
        env=child_env(env),
        check=True,
    )


@dataclass
class ManagedProcess:
    """A child process whose output is copied, line by line and labelled, to `sink`."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    sink: IO[str] | None = None
    log_path: Path | None = None
    colour: bool = False
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)
    _pump: threading.Thread | None = field(default=None, repr=False)
    _seen: list[str] = field(
        default_factory=list, repr=False
    )  # the first lines, for start-up checks

    @classmethod
    def service(cls, name: str, env: Mapping[str, str], **kwargs: object) -> ManagedProcess:
        return cls(name, [sys.executable, *COMMANDS[name]], env, **kwargs)  # type: ignore[arg-type]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    def start(self) -> None:
        self._process = subprocess.Popen(
            die_with_parent(self.argv, signal.SIGTERM),  # gone with us, however we die
            cwd=REPO,
            env=child_env(self.env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # our signals reach it only when we send them
        )
        self._pump = threading.Thread(
            target=self._copy_output, name=f"{self.name}-output", daemon=True
        )
        self._pump.start()

    def said(self, text: str) -> bool:
        """Whether one of its first lines of output contains `text` (e.g. "consumer started")."""
        return any(text in line for line in list(self._seen))

    def signal(self, signum: int) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL, as a crash would: no cleanup, no goodbye."""
        if self._process and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        self.wait(10)

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM and wait for a graceful exit; SIGKILL if it does not come."""
        if self._process is None:
            return None
        self.signal(signal.SIGTERM)
        code = self.wait(timeout)
        if code is None:
            self.kill()
            code = self._process.returncode
        return code

    def wait(self, timeout: float) -> int | None:
        if self._process is None:
            return None
        try:
            code = self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        if self._pump is not None:
            self._pump.join(5)
        return code

    def _copy_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        label = f"{self.name:<8}|"
        if self.colour:
            label = f"{COLOURS.get(self.name, '')}{label}{RESET}"
        log = self.log_path.open("a") if self.log_path else None
        try:
            for line in self._process.stdout:
                if len(self._seen) < SEEN_LINES:
                    self._seen.append(line)
                if log:
                    log.write(line)
                    log.flush()
                if self.sink:
                    self.sink.write(f"{label} {line}")
                    self.sink.flush()
        finally:
            self._process.stdout.close()
            if log:
                log.close()
