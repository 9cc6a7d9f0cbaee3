"""RFC 9457 problem details: the one table from exceptions to HTTP responses."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from app.domain.errors import (
    Forbidden,
    IdempotencyKeyInFlight,
    IdempotencyKeyReused,
    IllegalTransition,
    InsufficientScope,
    InvalidInput,
    InvalidToken,
    OrderNotFound,
    Unavailable,
)
from app.http.security import bearer_challenge
from app.http.wire import (
    PARAMETERS_DETAIL,
    InvalidParameter,
    MalformedJson,
    UnsupportedMediaType,
    encode,
)

log = logging.getLogger("app.http")

MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 2


class FieldProblem(msgspec.Struct, frozen=True):
    field: str
    message: str


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldProblem] | None = None


class Kind(msgspec.Struct, frozen=True):
    status: int
    slug: str
    title: str

    @property
    def type(self) -> str:
        return f"urn:orders:problem:{self.slug}"


# First match wins, so subclasses come before their bases.
VALIDATION = Kind(422, "validation-error", "Invalid request")
INVALID_PARAMETER = Kind(400, "invalid-parameter", "Invalid query parameter")
ERRORS: list[tuple[type[Exception], Kind]] = [
    (MalformedJson, Kind(400, "malformed-json", "Malformed JSON")),
    (UnsupportedMediaType, Kind(415, "unsupported-media-type", "Unsupported media type")),
    (InvalidParameter, INVALID_PARAMETER),
    (InvalidInput, VALIDATION),
    (OrderNotFound, Kind(404, "order-not-found", "Order not found")),
    (IllegalTransition, Kind(409, "illegal-transition", "Status change not allowed")),
    (IdempotencyKeyInFlight, Kind(409, "idempotency-key-in-flight", "Request already in progress")),
    (IdempotencyKeyReused, Kind(422, "idempotency-key-reused", "Idempotency-Key reused")),
    (InvalidToken, Kind(401, "invalid-token", "Missing or invalid token")),
    (InsufficientScope, Kind(403, "insufficient-scope", "Insufficient scope")),
    (Forbidden, Kind(403, "forbidden", "Forbidden")),
    (Unavailable, Kind(503, "unavailable", "Service unavailable")),
]
# Errors the framework raises before our code runs (routing, limits, parameters).
HTTP_KINDS: dict[int, Kind] = {
    400: Kind(400, "bad-request", "Bad request"),
    404: Kind(404, "not-found", "Not found"),
    405: Kind(405, "method-not-allowed", "Method not allowed"),
    408: Kind(408, "request-timeout", "Request timeout"),
    413: Kind(413, "payload-too-large", "Request body too large"),
    415: Kind(415, "unsupported-media-type", "Unsupported media type"),
    429: Kind(429, "rate-limited", "Too many requests"),
}
INTERNAL = Kind(500, "internal-error", "Internal server error")
# Every kind by its slug, for the OpenAPI document; ours win over the framework's.
KINDS: dict[str, Kind] = {
    kind.slug: kind
    for kind in [*HTTP_KINDS.values(), INVALID_PARAMETER, *(kind for _, kind in ERRORS)]
}


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    kind, detail, errors = _classify(exc)
    if kind.status == 503:  # expected while the database is away: no traceback
        log.warning("request refused", extra={"path": request.url.path, "error": str(exc)})
    elif kind.status >= 500:
        log.error("request failed", exc_info=exc, extra={"path": request.url.path})
    problem = Problem(
        type=kind.type,
        title=kind.title,
        status=kind.status,
        detail=detail,
        instance=request.url.path,
        request_id=request.scope.get("state", {}).get("request_id"),
        errors=errors,
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if kind.status == 503 else {}
    if kind.status == 408:  # the rest of the body may still be on its way: do not wait
        headers["Connection"] = "close"
    if isinstance(exc, InvalidToken | InsufficientScope):
        headers["WWW-Authenticate"] = bearer_challenge(exc)
    if isinstance(exc, HTTPException) and exc.headers:
        headers.update(exc.headers)
    return Response(
        encode(problem), status_code=kind.status, media_type=MEDIA_TYPE, headers=headers
    )


def _classify(exc: Exception) -> tuple[Kind, str, list[FieldProblem] | None]:
    for error_type, kind in ERRORS:
        if isinstance(exc, error_type):
            errors = (
                [FieldProblem(e.field, e.message) for e in exc.errors]
                if isinstance(exc, InvalidInput)
                else None
            )
            return kind, str(exc), errors
    if isinstance(exc, ValidationException):
        errors = _parameter_errors(exc)
        # A body of the wrong shape is a validation error (422) wherever it is decoded;
        # a bad query parameter is a bad request (400), like our own InvalidParameter.
        if _about_body(exc):
            return VALIDATION, "The request is not valid.", errors
        return INVALID_PARAMETER, PARAMETERS_DETAIL, errors
    if isinstance(exc, HTTPException):
        kind = HTTP_KINDS.get(exc.status_code, Kind(exc.status_code, "http-error", exc.detail))
        return kind, exc.detail, None
    return INTERNAL, "The server could not complete the request.", None


def _about_body(exc: ValidationException) -> bool:
    extra = exc.extra if isinstance(exc.extra, list) else []
    return any(isinstance(item, dict) and item.get("source") == "body" for item in extra)


def _parameter_errors(exc: ValidationException) -> list[FieldProblem] | None:
    """Litestar reports bad query/path parameters as a list of {key, message}."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    found = [
        FieldProblem(str(item.get("key", "")), str(item.get("message", "")))
        for item in extra
        if isinstance(item, dict)
    ]
    return found or None
