"""1,000 connections trickling a byte a second — half their headers, half (with a token) a
body — do not starve ordinary requests: none fails and their p99 stays under a second.

The API runs here without a database (it starts without one; nothing below needs one), so
the test needs no PostgreSQL and measures the server's connection handling alone: what
starved before was granian's per-worker slots, which slow connections held (64 of them).
The tricklers run in their own process, so this one's event loop measures only the API.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.stack.paths import free_port
from scripts.stack.processes import ManagedProcess
from scripts.stack.waiting import wait_for
from tests.support.pipeline import SIGNING_KEY, auth_env

TRICKLERS = 1_000
ORDINARY = 200
PATHS = ("/health/live", "/schema/openapi.json")


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("slow-clients")
    port = free_port()
    env = {
        **auth_env(directory),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",  # never needed below
        "HTTP_PORT": str(port),
        "HTTP_METRICS_PORT": "0",
        "LOG_FORMAT": "json",
    }
    process = ManagedProcess.service("api", env, log_path=Path(directory) / "api.log")
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(url), timeout=60, what="the API to answer")
        yield url
    finally:
        process.stop(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def _ordinary_load(url: str) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    failures: list[str] = []

    async def one(client: httpx.AsyncClient, path: str) -> None:
        started = time.monotonic()
        try:
            response = await client.get(path)
            if response.status_code != 200:
                failures.append(f"{path}: {response.status_code}")
        except httpx.HTTPError as exc:
            failures.append(f"{path}: {exc!r}")
        latencies.append(time.monotonic() - started)

    async with httpx.AsyncClient(
        base_url=url, timeout=5, limits=httpx.Limits(max_connections=10)
    ) as client:
        for batch in range(ORDINARY // 10):
            await asyncio.gather(*(one(client, PATHS[(batch + i) % 2]) for i in range(10)))
    return latencies, failures


def test_trickling_connections_do_not_starve_ordinary_requests(api_url: str) -> None:
    port = api_url.rsplit(":", 1)[1]
    command = [sys.executable, "-m", "tests.support.trickle", port, str(TRICKLERS),
               SIGNING_KEY.customer()]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as tricklers:
        try:
            assert tricklers.stdout is not None
            connected = int(tricklers.stdout.readline().split()[-1])  # 3 s into the siege
            latencies, failures = asyncio.run(_ordinary_load(api_url))
            assert tricklers.poll() is None  # the siege lasted the whole load
        finally:
            tricklers.terminate()
    assert connected >= TRICKLERS // 2  # the siege was real (429'd bodies come back later)
    assert failures == []
    assert len(latencies) == ORDINARY
    p99 = statistics.quantiles(latencies, n=100)[98]
    p50 = statistics.median(latencies)
    print(f"\n{connected} tricklers open: {ORDINARY} requests, p50 {p50:.3f} s, "
          f"p99 {p99:.3f} s, max {max(latencies):.3f} s")  # fmt: skip
    assert p99 < 1.0
