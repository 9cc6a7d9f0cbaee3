"""Settings from the environment (and `.env`), validated once at start.

The seed's variable names come first (DB_HOST … LOG_LEVEL); everything else has
a default a developer will not need to touch. A wrong or missing value stops
the process with one line naming the variable (`ConfigError`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Literal, cast, get_args
from urllib.parse import quote

import msgspec
from dotenv import dotenv_values

from app.domain.events import EventType

LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["json", "console"]


class ConfigError(Exception):
    """A setting is missing or invalid; the message is one line a person can act on."""


class DatabaseSettings(msgspec.Struct, frozen=True):
    url: str
    pool_size: int
    connect_timeout: float
    statement_timeout: float  # seconds; 0: none


class KafkaSettings(msgspec.Struct, frozen=True):
    brokers: str
    topic: str
    dlq_topic: str
    group_id: str
    routes: Mapping[EventType, str]
    source: str

    def topic_for(self, event_type: EventType) -> str:
        return self.routes.get(event_type, self.topic)

    @property
    def consumed_topics(self) -> list[str]:
        """Everything our consumer reads: the main topic plus any routed elsewhere."""
        return sorted({self.topic, *self.routes.values()})


class HttpSettings(msgspec.Struct, frozen=True):
    host: str
    port: int
    workers: int
    max_concurrency: int
    max_body_bytes: int
    max_items: int
    max_page_size: int
    idempotency_ttl: timedelta


class AuthSettings(msgspec.Struct, frozen=True):
    """Who may call the API: where the token keys come from and what a token must say.

    Read by every process but checked by the API alone (`require_auth`): the relay and
    the consumer never see a token.
    """

    disabled: bool
    public_key_file: str | None
    jwks_url: str | None
    issuer: str | None
    audience: str | None
    customer_claim: str
    algorithms: tuple[str, ...]
    leeway: float  # seconds of clock skew tolerated on exp/nbf/iat
    jwks_cache: float  # seconds a fetched JWKS is trusted before it is fetched again
    cursor_secret: str | None
    metrics_port: int  # the API's /metrics, on METRICS_HOST (0: not served)


class EdgeSettings(msgspec.Struct, frozen=True):
    """What one caller may take from the API: a request rate, and time to send a request."""

    rate_limit_per_minute: int  # per principal (per address without one), per worker; 0: off
    max_in_flight: int  # requests one principal may have open at once, per worker; 0: off
    header_timeout: float  # seconds to send the request line and headers
    body_timeout: float  # seconds to send the whole body, once the headers are in


class RelaySettings(msgspec.Struct, frozen=True):
    batch_size: int
    poll_interval: float
    retention: timedelta
    metrics_port: int


class ConsumerSettings(msgspec.Struct, frozen=True):
    batch_size: int
    max_attempts: int
    max_order_total: int
    session_timeout_ms: int
    metrics_port: int


class Settings(msgspec.Struct, frozen=True):
    database: DatabaseSettings
    kafka: KafkaSettings
    http: HttpSettings
    relay: RelaySettings
    auth: AuthSettings
    edge: EdgeSettings
    consumer: ConsumerSettings
    log_level: LogLevel
    log_format: LogFormat
    otel_endpoint: str | None
    metrics_host: str  # where relay and consumer serve /metrics (0.0.0.0 in containers)


def load(environ: Mapping[str, str] | None = None, env_file: str | None = ".env") -> Settings:
    """Read every setting; `.env` fills in what the real environment leaves out."""
    env = _Env({**_dotenv(env_file), **(os.environ if environ is None else environ)})
    return Settings(
        database=DatabaseSettings(
            url=_database_url(env),
            pool_size=env.integer("DB_POOL_SIZE", 10, low=1, high=200),
            connect_timeout=env.number("DB_CONNECT_TIMEOUT", 5.0, low=0.1),
            statement_timeout=env.number("DB_STATEMENT_TIMEOUT", 10.0),
        ),
        kafka=_kafka(env),
        http=HttpSettings(
            host=env.text("HTTP_HOST", "127.0.0.1"),
            port=env.integer("HTTP_PORT", 8080, low=1, high=65535),
            workers=env.integer("HTTP_WORKERS", 1, low=1, high=64),
            # granian's backpressure counts connections, a slow one included: 64 let 1,000
            # trickling clients starve everyone (tests/e2e/test_slow_clients.py).
            max_concurrency=env.integer("HTTP_MAX_CONCURRENCY", 2048, low=1, high=10_000),
            max_body_bytes=env.integer("HTTP_MAX_BODY_BYTES", 64 * 1024, low=1024),
            max_items=env.integer("ORDER_MAX_ITEMS", 100, low=1, high=10_000),
            max_page_size=env.integer("HTTP_MAX_PAGE_SIZE", 100, low=1, high=1000),
            idempotency_ttl=timedelta(hours=env.number("IDEMPOTENCY_TTL_HOURS", 24.0, low=0.001)),
        ),
        relay=RelaySettings(
            batch_size=env.integer("RELAY_BATCH_SIZE", 2000, low=1, high=10_000),
            poll_interval=env.number("RELAY_POLL_INTERVAL", 1.0, low=0.01),
            retention=timedelta(hours=env.number("OUTBOX_RETENTION_HOURS", 24.0, low=0.0)),
            metrics_port=env.integer("RELAY_METRICS_PORT", 9101, low=0, high=65535),
        ),
        auth=_auth(env),
        edge=EdgeSettings(
            rate_limit_per_minute=env.integer("RATE_LIMIT_PER_MINUTE", 1200, high=1_000_000),
            max_in_flight=env.integer("HTTP_MAX_IN_FLIGHT_PER_CALLER", 16, high=10_000),
            header_timeout=env.number("HTTP_HEADER_TIMEOUT", 5.0, low=0.5),
            body_timeout=env.number("HTTP_BODY_TIMEOUT", 10.0, low=0.5),
        ),
        consumer=ConsumerSettings(
            batch_size=env.integer("CONSUMER_BATCH_SIZE", 200, low=1, high=10_000),
            max_attempts=env.integer("CONSUMER_MAX_ATTEMPTS", 3, low=1, high=100),
            max_order_total=env.integer("ORDER_MAX_TOTAL", 1_000_000, low=0),
            session_timeout_ms=env.integer(
                "KAFKA_SESSION_TIMEOUT_MS", 10_000, low=1000, high=300_000
            ),
            metrics_port=env.integer("CONSUMER_METRICS_PORT", 9102, low=0, high=65535),
        ),
        log_level=cast(LogLevel, env.choice("LOG_LEVEL", "info", get_args(LogLevel))),
        log_format=cast(LogFormat, env.choice("LOG_FORMAT", "json", get_args(LogFormat))),
        otel_endpoint=env.optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
        metrics_host=env.text("METRICS_HOST", "127.0.0.1"),
    )


def _dotenv(path: str | None) -> dict[str, str]:
    if path is None or not os.path.exists(path):
        return {}
    return {key: value for key, value in dotenv_values(path).items() if value is not None}


def _database_url(env: _Env) -> str:
    url = env.optional("DATABASE_URL")
    if url is None:
        ssl_mode = env.choice(
            "DB_SSL_MODE",
            "disable",
            ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
        )
        user = quote(env.text("DB_USER", "postgres"), safe="")
        password = env.optional("DB_PASSWORD")
        auth = f"{user}:{quote(password, safe='')}" if password else user
        host = env.text("DB_HOST", "localhost")
        port = env.integer("DB_PORT", 5432, low=1, high=65535)
        name = env.text("DB_NAME", "orders")
        url = f"postgresql://{auth}@{host}:{port}/{name}?sslmode={ssl_mode}"
    return sqlalchemy_url(url)


def sqlalchemy_url(url: str) -> str:
    """A postgres:// or postgresql:// URL, made explicit about its driver (psycopg 3)."""
    if not re.match(r"^postgres(ql)?(\+psycopg)?://", url):
        raise ConfigError("DATABASE_URL must start with postgresql:// (got another scheme)")
    return re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql+psycopg://", url)


def _kafka(env: _Env) -> KafkaSettings:
    topic = env.topic("KAFKA_TOPIC", "orders")
    routes = {
        event_type: env.topic(_route_variable(event_type), topic)
        for event_type in EventType
        if env.optional(_route_variable(event_type))
    }
    return KafkaSettings(
        brokers=env.text("KAFKA_BROKERS", "localhost:9092"),
        topic=topic,
        dlq_topic=env.topic("KAFKA_DLQ_TOPIC", f"{topic}.dlq"),
        group_id=env.text("KAFKA_GROUP_ID", "order-service"),
        routes=routes,
        source=env.text("EVENT_SOURCE", "/order-service"),
    )


# --- Authentication (issue 10) -------------------------------------------------------
# Asymmetric algorithms only: never `none`, never HMAC (a shared secret would let anyone
# who can verify a token also mint one).
ALGORITHMS = ("RS256", "ES256", "EdDSA")
MIN_CURSOR_SECRET = 32


def _auth(env: _Env) -> AuthSettings:
    algorithms = tuple((env.optional("AUTH_ALGORITHMS") or ",".join(ALGORITHMS)).split(","))
    if unknown := sorted({a.strip() for a in algorithms} - set(ALGORITHMS)):
        raise ConfigError(f"AUTH_ALGORITHMS may list only {', '.join(ALGORITHMS)} (got {unknown})")
    secret = env.optional("CURSOR_SECRET")
    if secret is not None and len(secret) < MIN_CURSOR_SECRET:
        raise ConfigError(f"CURSOR_SECRET must be at least {MIN_CURSOR_SECRET} characters")
    return AuthSettings(
        disabled=env.choice("AUTH_DISABLED", "false", ("true", "false")) == "true",
        public_key_file=env.optional("AUTH_PUBLIC_KEY_FILE"),
        jwks_url=env.optional("AUTH_JWKS_URL"),
        issuer=env.optional("AUTH_ISSUER"),
        audience=env.optional("AUTH_AUDIENCE"),
        customer_claim=env.text("AUTH_CUSTOMER_CLAIM", "sub"),
        algorithms=tuple(a.strip() for a in algorithms),
        leeway=env.number("AUTH_LEEWAY_SECONDS", 30.0),
        jwks_cache=env.number("AUTH_JWKS_CACHE_SECONDS", 300.0, low=1.0),
        cursor_secret=secret,
        metrics_port=env.integer("HTTP_METRICS_PORT", 9100, low=0, high=65535),
    )


def require_auth(auth: AuthSettings) -> None:
    """The API refuses to start without a way to check tokens, unless told so explicitly."""
    if auth.public_key_file and auth.jwks_url:
        raise ConfigError("set AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_URL, not both")
    if not auth.disabled and not (auth.public_key_file or auth.jwks_url):
        raise ConfigError(
            "no way to check tokens: set AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_URL "
            "(or AUTH_DISABLED=true, for experiments only)"
        )
    if auth.jwks_url and not re.match(r"^https?://", auth.jwks_url):
        raise ConfigError("AUTH_JWKS_URL must be an https:// (or http://) URL")
    if not auth.disabled and not (auth.issuer and auth.audience):
        raise ConfigError("AUTH_ISSUER and AUTH_AUDIENCE must be set to check tokens")
    if auth.cursor_secret is None:
        raise ConfigError(
            f"CURSOR_SECRET is not set: {MIN_CURSOR_SECRET}+ random characters, "
            "the same for every API instance (make dev makes one)"
        )


def _route_variable(event_type: EventType) -> str:
    """`order.created` is routed by KAFKA_TOPIC_ORDER_CREATED, and so on."""
    return "KAFKA_TOPIC_" + event_type.value.upper().replace(".", "_")


class _Env:
    """Typed reads of string variables, each failing with a one-line ConfigError."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def optional(self, name: str) -> str | None:
        value = self._values.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def integer(self, name: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a whole number (got {raw!r})") from None
        self._check_range(name, value, low, high)
        return value

    def number(self, name: str, default: float, *, low: float = 0.0) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number (got {raw!r})") from None
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be a finite number (got {raw!r})")
        self._check_range(name, value, low, None)
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = (self.optional(name) or default).lower()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)} (got {value!r})")
        return value

    def topic(self, name: str, default: str) -> str:
        value = self.text(name, default)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) or value in {".", ".."}:
            raise ConfigError(f"{name} is not a valid Kafka topic name (got {value!r})")
        return value

    @staticmethod
    def _check_range(name: str, value: float, low: float, high: float | None) -> None:
        if value < low or (high is not None and value > high):
            bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name} must be {bounds} (got {value})")
