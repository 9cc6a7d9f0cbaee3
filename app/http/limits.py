"""The edge: how much one caller may take (OWASP API4).

- A request rate per principal (per client address on public paths), with Litestar's
  RateLimitMiddleware: `429 rate-limited` with `Retry-After` and the IETF RateLimit
  headers. Its store is in memory, so the limit holds per API worker process: with W
  workers and N instances a principal gets at most W * N times RATE_LIMIT_PER_MINUTE.
- A cap on the requests one principal has open at once (HTTP_MAX_IN_FLIGHT_PER_CALLER):
  a body is read only once its caller is known, so a caller that trickles bodies over
  many connections holds at most this many of the worker's HTTP_MAX_CONCURRENCY slots;
  the rest are `429` before their body is read.
- A deadline for the body (HTTP_BODY_TIMEOUT): a client that trickles its body is cut
  off with `408` instead of holding a request slot for as long as it likes. Headers
  have theirs in the server (HTTP_HEADER_TIMEOUT, granian's header_read_timeout), and
  a connection still sending its headers holds no request slot.
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from typing import Any

from litestar.connection import Request
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.middleware import ASGIMiddleware, DefineMiddleware
from litestar.middleware.rate_limit import (
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from app.config import EdgeSettings
from app.domain.principal import Principal

PROBES = "^/health/"  # never limited: a probe must not be starved by its own schedule
_PROBE = re.compile(PROBES)


class RequestTimeout(HTTPException):
    status_code = 408


class PrincipalRateLimit(RateLimitMiddleware):
    """Litestar's limiter, saying also when to come back (`Retry-After`) once exhausted."""

    def create_response_headers(self, cache_object: CacheObject) -> dict[str, str]:
        headers = super().create_response_headers(cache_object)
        if len(cache_object.history) >= self.max_requests:
            headers["Retry-After"] = str(max(1, cache_object.reset - int(time.time())))
        return headers


def caller(request: Request[Any, Any, Any]) -> str:
    """The principal the authentication middleware found, else the client's address."""
    user = request.scope.get("user")
    return user.key if isinstance(user, Principal) else f"addr:{get_remote_address(request)}"


def rate_limit(edge: EdgeSettings) -> list[DefineMiddleware]:
    """The limiter, to run after authentication (it counts per principal); none when 0."""
    if not edge.rate_limit_per_minute:
        return []
    config = RateLimitConfig(
        rate_limit=("minute", edge.rate_limit_per_minute),
        identifier_for_request=caller,
        exclude=PROBES,
        middleware_class=PrincipalRateLimit,
    )
    return [config.middleware]


class TooManyInFlight(HTTPException):
    status_code = 429


class InFlightLimit(ASGIMiddleware):
    """At most `cap` open requests per caller (per worker): the rest are 429 at once."""

    scopes = (ScopeType.HTTP,)

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: collections.Counter[str] = collections.Counter()

    def should_bypass_for_scope(self, scope: Scope) -> bool:
        # Not exclude_path_pattern: Litestar 2 warns it will match the handler's own path.
        return _PROBE.match(scope["path"]) is not None

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        key = caller(scope["litestar_app"].request_class(scope))
        if self.open[key] >= self.cap:
            raise TooManyInFlight(
                detail=f"{self.cap} requests of yours are open already",
                headers={"Retry-After": "1"},
            )
        self.open[key] += 1
        try:
            await next_app(scope, receive, send)
        finally:
            self.open[key] -= 1
            if not self.open[key]:
                del self.open[key]


def body_deadline(app: ASGIApp, seconds: float) -> ASGIApp:
    """Give each request `seconds` to deliver its whole body, counted from its first read."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        deadline: float | None = None
        done = False

        async def bounded() -> ReceiveMessage:
            nonlocal deadline, done
            if done:  # the body is in: what follows (a disconnect) may take its time
                return await receive()
            deadline = deadline or asyncio.get_running_loop().time() + seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    detail=f"the body did not arrive within {seconds:g} s"
                ) from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await app(scope, receive if scope["method"] in ("GET", "HEAD") else bounded, send)

    return middleware
