"""What the bench shows while it runs: a line per phase, a bar for whatever takes time."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

# Wide enough for the result tables when the output is a log rather than a terminal.
console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def phase(title: str) -> None:
    console.rule(f"[bold]{title}")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
        console=console,
        transient=True,
    )


def run_timed(
    label: str, command: Sequence[str], seconds: float, *, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a load tool that stops by itself after about `seconds`, with a ticking bar."""
    started = time.monotonic()
    with _progress() as progress:
        task = progress.add_task(label, total=seconds, note="")
        process = subprocess.Popen(
            list(command), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            while process.poll() is None:
                progress.update(task, completed=min(seconds, time.monotonic() - started))
                time.sleep(0.2)
            out, err = process.communicate()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    console.log(f"{label}: done in {time.monotonic() - started:.1f}s")
    return subprocess.CompletedProcess(list(command), process.returncode, out, err)


def wait_counting(
    label: str,
    remaining: Callable[[], int],
    total: int,
    *,
    timeout: float,
    interval: float = 0.1,
) -> bool:
    """Poll `remaining()` until it is 0 (True) or `timeout` passes (False), showing a bar."""
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task(label, total=total, note="")
        while True:
            left = remaining()
            progress.update(task, completed=total - left, note=f"{left:,} left")
            if left <= 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(interval)


@contextmanager
def step(label: str) -> Iterator[None]:
    """A spinner for a step of unknown length, then one line saying how long it took."""
    started = time.monotonic()
    with console.status(label):
        yield
    console.log(f"{label}: {time.monotonic() - started:.1f}s")
