"""The in-flight cap (no I/O): one caller's open requests are bounded, the next is 429 at
once, another caller is not affected, and a finished request frees its place."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar

from app.http.limits import InFlightLimit, TooManyInFlight

pytestmark = pytest.mark.anyio
APP = Litestar([])


def scope(address: str) -> dict[str, Any]:
    return {"type": "http", "litestar_app": APP, "client": (address, 1), "headers": [],
            "path": "/api/v1/orders", "method": "GET", "query_string": b""}  # fmt: skip


async def test_a_callers_open_requests_are_capped() -> None:
    gate = asyncio.Event()
    entered: list[str] = []

    async def handler(scope: Any, receive: Any, send: Any) -> None:
        entered.append(scope["client"][0])
        await gate.wait()

    async def nothing() -> Any:
        return {}

    limit = InFlightLimit(cap=2)
    call = limit.handle
    held = [asyncio.create_task(call(scope("a"), nothing, nothing, handler)) for _ in range(2)]
    await asyncio.sleep(0)  # let both enter (one turn of the loop)
    with pytest.raises(TooManyInFlight) as refused:
        await call(scope("a"), nothing, nothing, handler)
    assert refused.value.headers == {"Retry-After": "1"}
    other = asyncio.create_task(call(scope("b"), nothing, nothing, handler))
    await asyncio.sleep(0)
    assert entered == ["a", "a", "b"]
    gate.set()
    await asyncio.gather(*held, other)
    assert not limit.open  # every place is free again
    await call(scope("a"), nothing, nothing, handler)


def test_the_whole_stack_answers_in_process(tmp_path: Any) -> None:
    """create_app's middleware (authentication, rate limit, in-flight cap) wired in order:
    no database answers here, so an authenticated request gets as far as a 503."""
    from litestar.testing import TestClient

    from app.http.app import create_app
    from scripts.stack.tokens import SigningKey
    from tests.support.offline import offline_settings

    key = SigningKey.generate()
    settings = offline_settings(key, tmp_path, RATE_LIMIT_PER_MINUTE="2")
    with TestClient(create_app(settings)) as client:
        assert client.get("/health/live").status_code == 200
        assert client.get("/api/v1/orders").status_code == 401
        auth = {"Authorization": f"Bearer {key.customer()}"}
        answers = [client.get("/api/v1/orders", headers=auth) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 429]
    assert answers[0].headers["ratelimit-limit"] == "2"
    assert answers[2].json()["type"] == "urn:orders:problem:rate-limited"
