"""OPTIONS answers with every method a path has.

Litestar 2 builds the automatic OPTIONS handler for the first handler registered
on a path and never updates it, so `OPTIONS /api/v1/orders` said `POST` but not
`GET` (litestar#4169, fixed in Litestar 3). This hook rewrites `Allow` from the
routes themselves.
"""

from __future__ import annotations

from litestar.routes import HTTPRoute
from litestar.types import Message, Scope


async def allow_every_method(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    routes = scope["litestar_app"].routes
    methods = sorted(
        {
            m
            for r in routes
            if isinstance(r, HTTPRoute) and r.path_format == template
            for m in r.methods
        }
    )
    if methods:
        headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
        message["headers"] = [*headers, (b"allow", ", ".join(methods).encode())]
