"""Bearer authentication on Litestar's own machinery: a middleware finds the principal,
guards check scopes, and each operation declares its scope once (`secured`), which
both enforces it and puts it in the OpenAPI document.

`/health/*` and `/schema/*` are public. With AUTH_DISABLED=true every request acts as
staff, and every response says so in a `Warning` header.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import DefineMiddleware
from litestar.middleware.authentication import (
    AbstractAuthenticationMiddleware,
    AuthenticationResult,
)
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Guard, Message, Scope

from app.auth.tokens import Verifier
from app.domain.errors import InsufficientScope, InvalidToken
from app.domain.principal import NOBODY, Principal
from app.domain.principal import Scope as OrderScope

SCHEME = "bearer"
PUBLIC = ["^/health/", "^/schema"]
DISABLED_WARNING = b'299 orders "authentication is disabled (AUTH_DISABLED=true)"'
SECURITY_COMPONENTS = Components(
    security_schemes={
        SCHEME: SecurityScheme(
            type="http",
            scheme="bearer",
            bearer_format="JWT",
            description=(
                "A JWT from your identity provider (locally: `make token`). Scopes: "
                "`orders:read`, `orders:write`, `orders:admin` (staff: every customer)."
            ),
        )
    }
)


class BearerAuthentication(AbstractAuthenticationMiddleware):
    """Sets `request.user` to the Principal the `Authorization: Bearer` token speaks for."""

    def __init__(self, app: ASGIApp, verifier: Verifier | None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.verifier = verifier

    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> Any:
        if self.verifier is None:  # AUTH_DISABLED=true
            return AuthenticationResult(user=NOBODY, auth=None)
        token = bearer_token(connection.headers.getall("authorization", []))
        return AuthenticationResult(user=await self.verifier.principal(token), auth=token)


def bearer_token(values: list[str]) -> str:
    if not values:
        raise InvalidToken("send Authorization: Bearer <token>", sent=False)
    if len(values) > 1:
        raise InvalidToken("send the Authorization header once")
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("the Authorization header is not `Bearer <token>`")
    return token.strip()


def authentication(verifier: Verifier | None) -> DefineMiddleware:
    return DefineMiddleware(BearerAuthentication, verifier=verifier, exclude=PUBLIC)


def principal_of(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """The caller (`request` by name: Litestar hands it to a dependency so called)."""
    user = request.scope.get("user")
    assert isinstance(user, Principal)  # the middleware runs on every non-public route
    return user


def requires(scope: OrderScope) -> Guard:
    # async: Litestar runs a plain-function guard in a worker thread (~9% of the API's CPU).
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if not principal_of(connection).may(scope):
            raise InsufficientScope(scope.value)

    return guard


def secured(scope: OrderScope) -> dict[str, Any]:
    """A route decorator's guard and OpenAPI security for `scope`: the one place it is said."""
    return {"guards": [requires(scope)], "security": [{SCHEME: [scope.value]}]}


def bearer_challenge(exc: InvalidToken | InsufficientScope) -> str:
    """RFC 6750 §3: no error code when no credentials were sent at all."""
    if isinstance(exc, InsufficientScope):
        return f'Bearer realm="orders", error="insufficient_scope", scope="{exc.scope}"'
    if not exc.sent:
        return 'Bearer realm="orders"'
    detail = str(exc).replace('"', "'")
    return f'Bearer realm="orders", error="invalid_token", error_description="{detail}"'


async def warn_auth_disabled(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", []), (b"warning", DISABLED_WARNING)]
