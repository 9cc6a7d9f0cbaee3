"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import swagger_ui
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.static_files import create_static_files_router
from sqlalchemy.ext.asyncio import AsyncEngine

from app import config, logs, telemetry
from app.auth.tokens import verifier_for
from app.config import AuthSettings, HttpSettings, Settings, require_auth
from app.db.bell import OutboxBell
from app.db.engine import create_engine, libpq_url
from app.http.controllers.health import HealthController
from app.http.controllers.orders import OrderController
from app.http.limits import body_deadline, in_flight_limit, rate_limit
from app.http.openapi import refine
from app.http.options import allow_every_method
from app.http.problems import problem_response
from app.http.request_id import request_id_middleware
from app.http.security import SECURITY_COMPONENTS, authentication, warn_auth_disabled
from app.http.telemetry import telemetry_middleware
from app.services.idempotency import prune_expired_keys
from app.services.orders import Emitter

SWAGGER_ASSETS = Path(swagger_ui.__file__).parent / "static"
ASSETS_PATH = "/schema/assets"
PRUNE_KEYS_EVERY = 60.0


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or config.load()
    require_auth(settings.auth)
    verifier = None if settings.auth.disabled else verifier_for(settings.auth)
    state: dict[str, AsyncEngine] = {}

    @asynccontextmanager
    async def database(_: Litestar) -> AsyncIterator[None]:
        engine = state["engine"] = create_engine(settings.database, application_name="orders-api")
        pruning = asyncio.create_task(prune_expired_keys(engine, every=PRUNE_KEYS_EVERY))
        try:
            yield
        finally:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await bell.close()
            await state.pop("engine").dispose()

    bell = OutboxBell(libpq_url(settings.database.url), settings.database, "orders-api")
    emitter = Emitter(settings.kafka.source, settings.kafka.topic_for, bell)

    def engine() -> AsyncEngine:
        return state["engine"]

    def http_settings() -> HttpSettings:
        return settings.http

    def auth_settings() -> AuthSettings:
        return settings.auth

    def get_emitter() -> Emitter:
        return emitter

    app = Litestar(
        route_handlers=[
            OrderController,
            HealthController,
            create_static_files_router(
                path=ASSETS_PATH, directories=[SWAGGER_ASSETS], include_in_schema=False
            ),
        ],
        dependencies={
            "engine": Provide(engine, sync_to_thread=False),
            "http_settings": Provide(http_settings, sync_to_thread=False),
            "auth_settings": Provide(auth_settings, sync_to_thread=False),
            "emitter": Provide(get_emitter, sync_to_thread=False),
        },
        lifespan=[database],
        middleware=[
            authentication(verifier),
            *rate_limit(settings.edge),
            *in_flight_limit(settings.edge),
        ],
        before_send=[allow_every_method, *([warn_auth_disabled] if verifier is None else [])],
        exception_handlers={Exception: problem_response},
        request_max_body_size=settings.http.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Orders",
            version="1.0.0",
            description="Orders API: create orders and follow them through their lifecycle.",
            path="/schema",
            components=SECURITY_COMPONENTS,
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                    css_url=f"{ASSETS_PATH}/swagger-ui.css",
                    standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                    path="/docs",
                    favicon=(
                        f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>"
                    ),
                )
            ],
        ),
        debug=False,
        logging_config=None,  # ours (app/logs.py), not Litestar's default, which would replace it
    )
    # Outermost, so that every response has an X-Request-ID: also those the router refuses
    # (404, 405) before any route's middleware would run.
    app.asgi_handler = request_id_middleware(
        telemetry_middleware(body_deadline(app.asgi_handler, settings.edge.body_timeout))
    )
    refine(app.openapi_schema, settings.http)
    return app


def serve_app() -> Litestar:
    """The factory granian calls in each worker process: settings, logging, app."""
    settings = config.load()
    logs.configure(settings.log_level, settings.log_format)
    telemetry.setup_tracing("orders-api", settings.otel_endpoint)
    return create_app(settings)
