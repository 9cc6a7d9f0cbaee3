"""What the container checks read, none of it needing a Docker engine:

- `run_compose_config()`: compose.yaml as a real Compose implementation resolves it
  (`docker compose config`, or Debian's `docker-compose config`), given a `.env`.
- `containerfile()`: the Containerfile's instructions, stage by stage.
- `setting_names()`: every environment variable app/config.py reads.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import config

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
CONTAINERFILE = REPO / "Containerfile"
IGNORE_FILES = (REPO / ".dockerignore", REPO / ".containerignore")
IMAGE_SERVICES = ("migrate", "kafka-init", "api", "relay", "consumer")  # from the Containerfile
ONE_SHOT = ("migrate", "kafka-init")

Service = dict[str, Any]


# --- compose.yaml -----------------------------------------------------------------------


def compose_command() -> list[str]:
    """`docker compose` (v2) when the plugin answers, else `docker-compose`; else fail."""
    docker = shutil.which("docker")
    if docker:
        plugin = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy:
        return [legacy]
    pytest.fail(
        "no Compose implementation on PATH: these checks resolve compose.yaml with a real one "
        "(`apt-get install docker-compose` on Debian, or the Docker Compose v2 plugin)"
    )


def run_compose_config(
    compose_file: Path, dotenv: Mapping[str, str], workdir: Path
) -> subprocess.CompletedProcess[str]:
    """`config` with exactly `dotenv` as the .env and nothing from our own environment."""
    env_file = workdir / "compose.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in dotenv.items()))
    return subprocess.run(
        [
            *compose_command(),
            "--project-directory",
            str(REPO),
            "--env-file",
            str(env_file),
            "-f",
            str(compose_file),
            "config",
        ],
        env={"PATH": os.environ["PATH"], "HOME": str(workdir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def environment(service: Service) -> dict[str, str]:
    """A service's environment as strings (Compose 1 keeps YAML ints, Compose 2 quotes)."""
    return {
        key: "" if value is None else str(value) for key, value in service["environment"].items()
    }


def _ports(service: Service) -> list[tuple[str, int, int]]:
    """(host address, host port, container port); Compose 2 prints mappings, Compose 1
    prints `address:published:target/protocol` once an address is given."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ""), int(port["published"]), int(port["target"])))
        else:
            *address, host, target = str(port).split("/")[0].split(":")
            found.append((":".join(address), int(host), int(target)))
    return found


def published(service: Service) -> dict[int, int]:
    """{host port: container port} for a service's published ports."""
    return {host: target for _, host, target in _ports(service)}


def published_addresses(service: Service) -> set[str]:
    """The host addresses a service's ports are bound to ('' is every address)."""
    return {address for address, _, _ in _ports(service)}


def volumes(service: Service) -> dict[str, str]:
    """{container path: volume or host path} (Compose 1 prints `src:dst:rw`, 2 a mapping)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            found[volume["target"]] = volume["source"]
        else:
            source, target, *_ = str(volume).split(":")
            found[target] = source
    return found


def healthcheck_disabled(service: Service) -> bool:
    check = service.get("healthcheck", {})
    return bool(check.get("disable")) or check.get("test") == ["NONE"]


def depends_on(service: Service) -> dict[str, str]:
    """{dependency: condition}."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in deps.items()}


def unescape(compose_text: str) -> str:
    """What the container receives for a string Compose printed (`$$` stands for `$`)."""
    return compose_text.replace("$$", "$")


# --- Containerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY…
    args: str
    stage: str  # the `AS` name of the stage it belongs to

    @property
    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} is not in exec (JSON) form"
        return [str(item) for item in value]


def containerfile() -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped, as Docker reads them."""
    lines = CONTAINERFILE.read_text().splitlines()
    instructions: list[Instruction] = []
    stage = ""
    pending = ""
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            stage = args.split()[-1] if " AS " in args.upper() else str(len(instructions))
        instructions.append(Instruction(keyword, args, stage))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return [i for i in instructions if i.stage == instructions[-1].stage]


def copies(instructions: list[Instruction]) -> list[tuple[list[str], str]]:
    """(sources, target) of each COPY from the build context (not `--from` a stage)."""
    found = []
    for instruction in instructions:
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from"):
            *sources, target = shlex.split(instruction.args)
            found.append((sources, target))
    return found


def image_env(instructions: list[Instruction]) -> dict[str, str]:
    """ENV of the final stage (`${PATH}` left as written)."""
    env: dict[str, str] = {}
    for instruction in final_stage(instructions):
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


# --- app/config.py ----------------------------------------------------------------------


def setting_names() -> list[str]:
    """Every variable `config.load()` reads, in the order it reads them (found by
    watching the reads, so a new setting cannot be missed)."""
    names: list[str] = []
    read = config._Env.optional

    def watching(env: config._Env, name: str) -> str | None:
        names.append(name)
        return read(env, name)

    patcher = pytest.MonkeyPatch()
    patcher.setattr(config._Env, "optional", watching)
    try:
        config.load(environ={}, env_file=None)
    finally:
        patcher.undo()
    return list(dict.fromkeys(names))


SEED_NAMES = [
    "DB_HOST",
    "DB_PORT",
    "DB_NAME",
    "DB_USER",
    "DB_PASSWORD",
    "DB_SSL_MODE",
    "KAFKA_BROKERS",
    "KAFKA_TOPIC",
    "KAFKA_GROUP_ID",
    "HTTP_PORT",
    "LOG_LEVEL",
]


# --- build context ----------------------------------------------------------------------


def ignore_patterns(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per line, with Docker's matching: `*` and `?` stay within one
    path segment, `**` spans any, and a pattern that matches a directory matches what is
    inside it."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex += "(.*/)?"
                index += 3
            elif pattern.startswith("**", index):
                regex += ".*"
                index += 2
            elif pattern[index] == "*":
                regex += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                regex += "[^/]"
                index += 1
            elif pattern[index] == "[":
                end = pattern.index("]", index)
                regex += pattern[index : end + 1]
                index = end + 1
            else:
                regex += re.escape(pattern[index])
                index += 1
        patterns.append((negated, re.compile(f"{regex}(/.*)?")))
    return patterns


def build_context(root: Path, ignore_file: Path) -> set[str]:
    """The files (relative paths) that reach the builder: the last matching pattern wins."""
    patterns = ignore_patterns(ignore_file)
    sent: set[str] = set()
    for path in _walk(root):
        relative = path.relative_to(root).as_posix()
        excluded = False
        for negated, regex in patterns:
            if regex.fullmatch(relative):
                excluded = not negated
        if not excluded:
            sent.add(relative)
    return sent


def _walk(root: Path) -> Iterator[Path]:
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            yield Path(directory) / name
