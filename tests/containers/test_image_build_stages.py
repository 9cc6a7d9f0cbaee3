"""The image's build stages, exercised without an engine.

deps stage: a clean venv holding exactly the distributions requirements.txt pins
(linked from this checkout's venv, which must have the same versions: the stand-in
for `pip install --no-deps -r requirements.txt`, which would need the index) must
pass `pip check`. runtime stage: the files the COPY lines name (through the ignore
file) are laid out in a directory standing in for WORKDIR, with the image's ENV;
then each compose service's command goes through the real entrypoint, as the
container would run it: migrate against a real PostgreSQL, api until its
HEALTHCHECK passes, relay and consumer until they run and stop on SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from scripts.stack.paths import free_port
from scripts.stack.waiting import wait_for
from tests.support.pipeline import auth_env
from tests.support.servers import PostgresServer

from .readers import (
    IGNORE_FILES,
    REPO,
    Instruction,
    Service,
    build_context,
    containerfile,
    copies,
    environment,
    final_stage,
    image_env,
)

pytestmark = pytest.mark.timeout(300)


def pins() -> dict[str, str]:
    found = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line)
        if match:
            found[canonical(match[1])] = match[3]
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def link_tree(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copy2(source, target)


@dataclass
class Image:
    """A directory standing in for the image's file system, and how to run in it."""

    root: Path
    venv: Path
    workdir: Path
    env: dict[str, str]
    entrypoint: list[str]
    healthcheck: list[str]

    def argv(self, command: list[str]) -> list[str]:
        """What the container runs for `command`: the entrypoint with it as arguments."""
        return [*self.entrypoint, *command]

    def program(self, argv: list[str]) -> list[str]:
        found = shutil.which(argv[0], path=self.env["PATH"])
        assert found and found.startswith(str(self.venv)), "python comes from the image's venv"
        return [found, *argv[1:]]

    def run_env(self, service: Service, **overrides: str) -> dict[str, str]:
        return {**self.env, **environment(service), "HOME": str(self.root), **overrides}

    def run(self, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.program(argv),
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def deps_stage(venv: Path) -> None:
    """The venv with the pinned distributions and nothing else."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python3*/site-packages")
    drifted = {}
    for name, version in pins().items():
        dist = importlib.metadata.distribution(name)
        if dist.version != version:
            drifted[name] = (version, dist.version)
            continue
        for file in dist.files or []:
            if not str(file).startswith(".."):  # console scripts live in bin/
                link_tree(Path(str(dist.locate_file(file))), site / file)
    assert not drifted, f".venv differs from requirements.txt (pin, installed): {drifted}"


def pip_in(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Our pip, run by the clean venv's interpreter, seeing only that venv."""
    pip_dist = importlib.metadata.distribution("pip")
    tool = venv.parent / "pip-tool"
    if not tool.exists():
        for file in pip_dist.files or []:
            if str(file).startswith("pip/"):
                link_tree(Path(str(pip_dist.locate_file(file))), tool / file)
    script = f"import sys; sys.path.append({str(tool)!r}); from pip._internal.cli.main import main"
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", f"{script}; sys.exit(main({list(args)!r}))"],
        env={
            "PATH": "/usr/bin:/bin",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def runtime_stage(root: Path, venv: Path) -> Image:
    """COPY and ENV of the final stage, applied to `root` instead of `/`."""
    runtime = final_stage(containerfile())
    context = build_context(REPO, IGNORE_FILES[0])
    (workdir_line,) = [i for i in runtime if i.keyword == "WORKDIR"]
    workdir = root / workdir_line.args.lstrip("/")
    for sources, target in copies(runtime):
        destination = root / target.lstrip("/") if target.startswith("/") else workdir / target
        for source in sources:
            base = source.rstrip("/")
            for path in sorted(context):
                if path == base:
                    link_tree(REPO / path, destination / Path(path).name)
                elif path.startswith(f"{base}/"):
                    link_tree(REPO / path, destination / path[len(base) + 1 :])
    env = image_env(runtime)
    env["PATH"] = env["PATH"].replace("/opt/venv", str(venv)).replace("${PATH}", "/usr/bin:/bin")
    env["PYTHONPATH"] = str(root / env["PYTHONPATH"].lstrip("/"))
    (entrypoint,) = [i for i in runtime if i.keyword == "ENTRYPOINT"]
    (check,) = [i for i in runtime if i.keyword == "HEALTHCHECK"]
    probe = Instruction("CMD", check.args.partition(" CMD ")[2], "").exec_form
    return Image(root, venv, workdir, env, entrypoint.exec_form, probe)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    base = tmp_path_factory.mktemp("image")
    deps_stage(base / "opt" / "venv")
    return runtime_stage(base, base / "opt" / "venv")


@pytest.fixture(scope="module")
def database(postgres: PostgresServer) -> Iterator[dict[str, str]]:
    """An empty database, as `postgres` is on the first `make up`; DB_* point at it."""
    name = f"image_{uuid.uuid4().hex[:12]}"
    with postgres.admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlsplit(postgres.url(name))
    yield {
        "DB_HOST": url.hostname or "127.0.0.1",
        "DB_PORT": str(url.port or 5432),
        "DB_NAME": name,
        "DB_USER": url.username or "postgres",
        "DB_PASSWORD": url.password or "",
    }
    with postgres.admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    # Logins belong to the cluster: init-db gave them compose's passwords, and every later
    # test's processes log in with the session's own.
    postgres.create_logins()


@pytest.fixture(scope="module")
def migrated(
    image: Image, services: dict[str, Service], database: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    migrate = services["migrate"]
    return image.run(image.argv(migrate["command"]), image.run_env(migrate, **database))


def server_of(database: dict[str, str]) -> dict[str, str]:
    """Where the database is, without who logs in: a process keeps compose's own login."""
    return {k: v for k, v in database.items() if k not in {"DB_USER", "DB_PASSWORD"}}


def test_the_pinned_closure_is_complete(image: Image) -> None:
    check = pip_in(image.venv, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    listed = pip_in(image.venv, "list", "--format=freeze")
    installed = dict(line.split("==") for line in listed.stdout.split())
    assert {canonical(k): v for k, v in installed.items()} == pins()


def test_migrate_role_migrates_an_empty_database(
    migrated: subprocess.CompletedProcess[str], postgres: PostgresServer, database: dict[str, str]
) -> None:
    assert migrated.returncode == 0, migrated.stderr
    head = ScriptDirectory.from_config(Config(str(REPO / "alembic.ini"))).get_current_head()
    with psycopg.connect(postgres.url(database["DB_NAME"])) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        members = conn.execute(
            "SELECT u.rolname, r.rolname, u.rolcanlogin, u.rolsuper FROM pg_auth_members m"
            " JOIN pg_roles u ON u.oid = m.member JOIN pg_roles r ON r.oid = m.roleid"
            " WHERE u.rolname LIKE 'orders\\_%\\_user' ORDER BY 1"
        ).fetchall()
    assert row == (head,)
    # ...and made each process's login, in its role, able to log in, no superuser.
    assert members == [
        ("orders_api_user", "orders_api", True, False),
        ("orders_consumer_user", "orders_consumer", True, False),
        ("orders_relay_user", "orders_relay", True, False),
    ]


@contextlib.contextmanager
def started(
    image: Image, command: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """The process runs inside the block; leaving it sends SIGTERM and expects exit 0."""
    with log.open("w") as sink:
        process = subprocess.Popen(
            image.program(image.argv(command)),
            cwd=image.workdir,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=45)
        assert code == 0, f"{command} exited with {code} on SIGTERM:\n{log.read_text()[-3000:]}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def wait_until(process: subprocess.Popen[bytes], log: Path, ready: Callable[[], bool]) -> None:
    """Until `ready()`, failing at once (with the log) if the process ends first."""
    wait_for(lambda: process.poll() is not None or ready(), timeout=60, interval=0.2)
    assert process.poll() is None, f"exited with {process.returncode}:\n{log.read_text()[-3000:]}"


def runs_module(process: subprocess.Popen[bytes], module: str) -> bool:
    """The entrypoint exec'd: the process we started *is* `python -m module` now."""
    argv = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
    return [b"-m", module.encode()] == argv[1:3]


def test_api_role_serves_and_passes_the_image_healthcheck(
    image: Image,
    services: dict[str, Service],
    database: dict[str, str],
    migrated: subprocess.CompletedProcess[str],
    tmp_path: Path,
) -> None:
    assert migrated.returncode == 0
    api = services["api"]
    port = free_port()
    env = image.run_env(
        api,
        **server_of(database),  # as orders_api_user, whom the migrate job made
        **auth_env(tmp_path),  # the test session's public key and a cursor secret
        HTTP_HOST="127.0.0.1",
        HTTP_PORT=str(port),
    )
    log = tmp_path / "api.log"
    with started(image, api["command"], env, log) as process:
        wait_until(process, log, lambda: image.run(image.healthcheck, env).returncode == 0)
        assert runs_module(process, "app")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=5) as ready:
            assert ready.status == 200, "the API reaches the migrated database"
    failing = image.run(image.healthcheck, env)
    assert failing.returncode == 1 and "health/live" in failing.stderr


@pytest.mark.parametrize("role", ["relay", "consumer"])
def test_relay_and_consumer_roles_run_report_health_and_stop_on_sigterm(
    image: Image,
    services: dict[str, Service],
    database: dict[str, str],
    migrated: subprocess.CompletedProcess[str],
    role: str,
    tmp_path: Path,
) -> None:
    assert migrated.returncode == 0
    service = services[role]
    kind, *probe = service["healthcheck"]["test"]
    assert kind == "CMD"
    nobody = f"127.0.0.1:{free_port()}"  # Kafka is not needed to start; nothing listens here
    metrics = {f"{role.upper()}_METRICS_PORT": str(free_port())}
    env = image.run_env(service, **server_of(database), **metrics, KAFKA_BROKERS=nobody)
    log = tmp_path / f"{role}.log"
    with started(image, service["command"], env, log) as process:
        wait_until(process, log, lambda: f'"{role} started"' in log.read_text())
        assert runs_module(process, role)
        wait_until(process, log, lambda: image.run(probe, env).returncode == 0)
    assert f'"{role} stopped"' in log.read_text()
    assert image.run(probe, env).returncode == 1


def test_any_other_command_runs_as_given(image: Image, services: dict[str, Service]) -> None:
    env = image.run_env(services["api"])
    done = image.run(image.argv(["python", "-c", "import sys, app; print(sys.prefix)"]), env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(image.venv), "python on the image's PATH is the venv's"


def test_a_wrong_setting_stops_a_role_with_one_line(
    image: Image, services: dict[str, Service]
) -> None:
    relay = services["relay"]
    done = image.run(image.argv(relay["command"]), image.run_env(relay, LOG_LEVEL="chatty"))
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("orders-relay: configuration error: LOG_LEVEL")
