"""What one caller may take from the API, over real HTTP on loopback: a request rate per
principal (429 with Retry-After and RateLimit headers), and no more time to send a body
than its deadline (408)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.pipeline import Pipeline
from tests.support.servers import PostgresServer, api_alone

ORDERS = "/api/v1/orders"
LIMIT = 5


def _api(
    database_url: str, postgres: PostgresServer, log_dir: Path, **settings: str
) -> Iterator[Pipeline]:
    with api_alone(postgres, database_url, log_dir, settings) as api:
        yield api


@pytest.fixture(scope="module")
def edge_api(
    module_database_url: str, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    """Deadlines of 2 s, and a rate limit of LIMIT requests a minute per principal."""
    yield from _api(
        module_database_url,
        postgres,
        tmp_path_factory.mktemp("edge-logs"),
        RATE_LIMIT_PER_MINUTE=str(LIMIT),
        HTTP_HEADER_TIMEOUT="2",
        HTTP_BODY_TIMEOUT="2",
    )


def test_each_principal_has_its_own_rate(edge_api: Pipeline) -> None:
    with edge_api.customer_client("8f0c0d5e-1111-4222-8333-944455556666") as first:
        answers = [first.get(ORDERS) for _ in range(LIMIT + 1)]
    assert [r.status_code for r in answers] == [200] * LIMIT + [429]
    assert answers[0].headers["ratelimit-limit"] == str(LIMIT)
    assert answers[0].headers["ratelimit-policy"] == f"{LIMIT}; w=60"
    assert [int(r.headers["ratelimit-remaining"]) for r in answers] == [4, 3, 2, 1, 0, 0]
    refused = answers[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:orders:problem:rate-limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    with edge_api.customer_client("0d3c9c58-2222-4333-8444-955566667777") as second:
        assert second.get(ORDERS).status_code == 200  # another principal: its own budget
    with httpx.Client(base_url=edge_api.api_url) as probe:
        assert all(probe.get("/health/live").status_code == 200 for _ in range(LIMIT + 2))


def test_a_body_that_trickles_is_cut_off_with_408(edge_api: Pipeline) -> None:
    async def trickle() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", edge_api.port)
        token = edge_api.key.admin()
        writer.write(
            f"POST {ORDERS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(4096), timeout=10)
        writer.close()
        return answer

    started = time.monotonic()
    answer = asyncio.run(trickle())
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"urn:orders:problem:request-timeout" in answer
    assert 1.5 < time.monotonic() - started < 6
