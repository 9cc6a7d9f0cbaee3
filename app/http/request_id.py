"""X-Request-ID: taken from the client when sensible, made up otherwise, echoed always.

The header's rule, its parameter (every operation's, never refused) and its response
header are declared here, once."""

from __future__ import annotations

import re
import uuid

from litestar.enums import ScopeType
from litestar.openapi.spec import OpenAPIHeader, OpenAPIType, Schema
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import correlation_id

NAME = "X-Request-ID"
HEADER = NAME.lower().encode()
_ACCEPTABLE = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
PARAMETERS = {
    "x_request_id": HeaderParameter(
        annotation=str,
        name=NAME,
        required=False,
        description=(
            "Your id for this request, echoed and logged when it is 1-128 characters of "
            "`A-Za-z0-9._:@/+=-`; otherwise the server makes one up"
        ),
    )
}
RESPONSE_HEADER = OpenAPIHeader(
    schema=Schema(type=OpenAPIType.STRING),
    required=True,
    description="The request's id: yours when you send a sensible one, else a new UUID",
)


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
