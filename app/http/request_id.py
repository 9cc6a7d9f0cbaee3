"""X-Request-ID: taken from the client when sensible, made up otherwise, echoed always."""

from __future__ import annotations

import re
import uuid

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import correlation_id

HEADER = b"x-request-id"
_ACCEPTABLE = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = [value for name, value in scope["headers"] if name == HEADER]
        raw = given[0] if len(given) == 1 and _ACCEPTABLE.match(given[0]) else None
        request_id = raw.decode() if raw else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        token = correlation_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            correlation_id.reset(token)

    return middleware
