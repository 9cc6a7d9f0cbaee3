"""`--profile`: py-spy samples a process under load; the stacks are kept and summarised.

The raw (collapsed-stack) files under `.state/bench/profiles/` open in speedscope or
flamegraph.pl. The summary names the functions where the samples are (self time), how the
time splits between libraries, and the inclusive share of our own functions.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import msgspec

from scripts.stack.paths import REPO

FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::\d+)?\)$")
PACKAGES = (
    "sqlalchemy",
    "psycopg",
    "psycopg_pool",
    "litestar",
    "msgspec",
    "granian",
    "confluent_kafka",
    "tenacity",
    "prometheus_client",
    "opentelemetry",
    "structlog",
    "asyncio",
    "logging",
    "json",
    "uuid",
    "selectors",
    "threading",
    "concurrent",
)
OURS = ("app/", "relay/", "consumer/")
RATE = 200  # samples a second


class Share(msgspec.Struct, array_like=True):
    what: str
    percent: float


class ProfileSummary(msgspec.Struct):
    process: str
    samples: int
    gil_busy_percent: float  # share of the time some thread held the GIL (Python was running)
    self_time: list[Share]  # leaf functions
    by_package: list[Share]  # leaf frames by library
    ours_inclusive: list[Share]  # our functions, time spent in them and below
    raw_stacks: str  # where the collapsed stacks are


def record(py_spy: str, pid: int, seconds: int, output: Path) -> subprocess.Popen[bytes]:
    """Start sampling `pid` and its children for `seconds`; wait on the returned process."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            str(RATE),
            "--gil",  # only the thread holding the GIL: where Python spends CPU
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _frames(line: str) -> tuple[list[tuple[str, str]], int]:
    stack, _, count = line.rpartition(" ")
    frames = []
    for part in stack.split(";"):
        if part.startswith(("process ", "thread ")):
            continue
        match = FRAME.match(part)
        if match:
            frames.append((match["name"], match["path"]))
        else:
            frames.append((part, ""))
    return frames, int(count) if count.isdigit() else 0


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3."):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return tail.split("/", 1)[1] if marker.startswith("/lib") else tail
    for root in OURS:
        if f"/{root}" in path:
            return root + path.split(f"/{root}", 1)[1]
    return path


def _package(path: str) -> str:
    short = _short(path)
    if short.startswith(OURS):
        return "ours (" + short.split("/", 1)[0] + ")"
    head = short.split("/", 1)[0].removesuffix(".py")
    return head if head in PACKAGES else ("python" if "/lib/python3." in path else head or "?")


def _top(counter: Counter[str], total: int, limit: int) -> list[Share]:
    return [Share(what, round(100 * n / total, 1)) for what, n in counter.most_common(limit)]


def summarise(process: str, path: Path, seconds: float, limit: int = 15) -> ProfileSummary:
    own: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in _lines(path):
        frames, count = _frames(line)
        if not frames or not count:
            continue
        total += count
        name, where = frames[-1]
        own[f"{name} ({_short(where)})"] += count
        packages[_package(where)] += count
        seen = {f"{n} ({_short(p)})" for n, p in frames if _short(p).startswith(OURS)}
        for function in seen:
            inclusive[function] += count
    total = max(total, 1)
    return ProfileSummary(
        process=process,
        samples=total,
        gil_busy_percent=round(min(100.0, 100 * total / (RATE * seconds)), 1),
        self_time=_top(own, total, limit),
        by_package=_top(packages, total, limit),
        ours_inclusive=_top(inclusive, total, limit),
        raw_stacks=_relative(path),
    )


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _lines(path: Path) -> Iterable[str]:
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()
