"""The Litestar application, composed from named parts: what the lifespan opens (kept
in `app.state`), the dependencies handlers ask for, the edge, the OpenAPI document."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp

from app import config, logs, telemetry
from app.auth.tokens import verifier_for
from app.config import Settings, require_auth
from app.db.engine import create_engine, libpq_url
from app.db.wakeup import OutboxBell
from app.http import parameters, request_id
from app.http.controllers.health import HealthController
from app.http.controllers.orders import OrderController
from app.http.limits import InFlightLimit, body_deadline, rate_limit
from app.http.openapi import StructSchemas, refine
from app.http.options import allow_every_method
from app.http.problems import PROBLEM_DETAILS
from app.http.security import SECURITY_COMPONENTS, authentication, warn_auth_disabled
from app.http.telemetry import telemetry_middleware
from app.http.wire import JsonResponse
from app.services.desk import OrderDesk
from app.services.idempotency import prune_expired_keys
from app.services.orders import Emitter

SWAGGER_ASSETS = Path(swagger_ui.__file__).parent / "static"
ASSETS_PATH = "/schema/assets"
PRUNE_KEYS_EVERY = 60.0
NAME = "orders-api"


class OrdersApp(Litestar):
    """Litestar with our edge outermost, so that every response, the router's own 404 and
    405 included, has an X-Request-ID, is measured, and waits for its body only so long."""

    def __init__(self, *, body_timeout: float, **kwargs: Any) -> None:
        self.body_timeout = body_timeout
        super().__init__(**kwargs)

    def _create_asgi_handler(self) -> ASGIApp:
        inner = body_deadline(super()._create_asgi_handler(), self.body_timeout)
        return request_id.request_id_middleware(telemetry_middleware(inner))


def lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """Open the engine and the outbox bell for the app's lifetime and set up the order desk
    (both in `app.state`), and prune expired idempotency keys meanwhile."""

    @asynccontextmanager
    async def resources(app: Litestar) -> AsyncIterator[None]:
        engine = app.state.engine = create_engine(settings.database, application_name=NAME)
        bell = OutboxBell(libpq_url(settings.database.url), settings.database, NAME)
        emitter = Emitter(settings.kafka.source, settings.kafka.topic_for, bell)
        http = settings.http
        app.state.order_desk = OrderDesk(engine, emitter, http.idempotency_ttl, http.max_items)
        pruning = asyncio.create_task(prune_expired_keys(engine, every=PRUNE_KEYS_EVERY))
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await bell.close()
            await engine.dispose()

    return resources


def dependencies(settings: Settings) -> dict[str, Provide]:
    """What handlers ask for. A write handler asks for one thing, its `Write` (the desk
    and the request's facts), not for each: Litestar resolves several side by side in a
    task group, on every request (app.http.parameters.Write)."""

    def opened(name: str) -> Provide:  # by the lifespan, kept in app.state
        def provide(state: State) -> Any:
            return state[name]

        return Provide(provide, sync_to_thread=False)

    return {
        "engine": opened("engine"),
        "keyed_write": parameters.keyed_write(settings.http.idempotency_ttl),
        "listing": parameters.listing(
            settings.http.max_page_size, settings.auth.cursor_secret or ""
        ),
        **parameters.DEPENDENCIES,
    }


def edge(settings: Settings) -> list[DefineMiddleware | Any]:
    """Who is calling, then how much they may take (both count per principal)."""
    verifier = None if settings.auth.disabled else verifier_for(settings.auth)
    return [
        authentication(verifier),
        *rate_limit(settings.edge),
        *([InFlightLimit(settings.edge.max_in_flight)] if settings.edge.max_in_flight else []),
    ]


def openapi_config() -> OpenAPIConfig:
    swagger = SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path="/docs",
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )
    return OpenAPIConfig(
        title="Orders",
        version="1.0.0",
        description="Orders API: create orders and follow them through their lifecycle.",
        path="/schema",
        components=SECURITY_COMPONENTS,
        render_plugins=[swagger],
    )


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or config.load()
    require_auth(settings.auth)
    assets = create_static_files_router(
        path=ASSETS_PATH, directories=[SWAGGER_ASSETS], include_in_schema=False
    )
    app = OrdersApp(
        body_timeout=settings.edge.body_timeout,
        route_handlers=[OrderController, HealthController, assets],
        dependencies=dependencies(settings),
        parameters=request_id.PARAMETERS,
        lifespan=[lifespan(settings)],
        middleware=edge(settings),
        before_send=[allow_every_method, *([warn_auth_disabled] if settings.auth.disabled else [])],
        plugins=[PROBLEM_DETAILS, StructSchemas()],
        response_class=JsonResponse,
        request_max_body_size=settings.http.max_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
        logging_config=None,  # ours (app/logs.py), not Litestar's default, which would replace it
    )
    refine(app.openapi_schema, settings.http)
    return app


def serve_app() -> Litestar:
    """The factory granian calls in each worker process: settings, logging, app."""
    settings = config.load()
    logs.configure(settings.log_level, settings.log_format)
    telemetry.setup_tracing(NAME, settings.otel_endpoint)
    return create_app(settings)
