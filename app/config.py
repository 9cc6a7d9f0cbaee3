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
from typing import Literal, TypedDict, cast, get_args
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
    # Liveness (issue 12): a wait on PostgreSQL is logged after slow_wait seconds and its
    # connection abandoned (and replaced) after give_up_after; lock waits end after lock_timeout.
    lock_timeout: float = 5.0  # seconds; 0: none
    slow_wait: float = 2.0
    give_up_after: float = 12.0


class InboundTopic(msgspec.Struct, frozen=True):
    """A topic another system writes, the event types it may carry and from which source."""

    topic: str
    types: frozenset[EventType]
    source: str


# What another system may tell us about an order; confirming or failing it is our decision.
INBOUND_TYPES = frozenset({EventType.SHIPPED, EventType.DELIVERED, EventType.CANCELLED})
# --- Kafka client security (issue 11) ---------------------------------------------
KafkaProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSecurity(msgspec.Struct, frozen=True):
    """How a client proves who it is to the brokers (and checks who they are).

    Invariant (checked by `load`): SASL protocols come with a mechanism, a user
    name and a password; a certificate comes with its key; files named exist.
    """

    protocol: KafkaProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None  # mTLS: our certificate …
    ssl_key_location: str | None = None  # … and its private key
    ssl_key_password: str | None = None

    def __repr__(self) -> str:  # settings end up in logs and tracebacks: no secrets there
        return f"KafkaSecurity(protocol={self.protocol!r}, user={self.sasl_username!r})"


class KafkaSettings(msgspec.Struct, frozen=True):
    brokers: str
    topic: str
    dlq_topic: str
    group_id: str
    routes: Mapping[EventType, str]
    source: str
    inbound: tuple[InboundTopic, ...] = ()
    security: KafkaSecurity = KafkaSecurity()

    def topic_for(self, event_type: EventType) -> str:
        return self.routes.get(event_type, self.topic)

    @property
    def own_topics(self) -> list[str]:
        """The topics only our relay writes: the main topic plus any routed elsewhere."""
        return sorted({self.topic, *self.routes.values()})

    @property
    def consumed_topics(self) -> list[str]:
        """Everything our consumer reads: our own topics and the inbound ones."""
        return sorted({*self.own_topics, *(rule.topic for rule in self.inbound)})


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
    # Liveness and fencing (issue 12): a relay that stops renewing loses its shards after
    # lease_ttl seconds; with fencing, a relay publishes through a transactional producer
    # `<transactional_id_prefix>.relay-<id>` that whoever takes its expired leases fences.
    lease_ttl: float = 10.0
    fencing: bool = True
    transactional_id_prefix: str = "orders-relay"
    kafka_timeout: float = 5.0  # seconds a transaction may take to commit before it is aborted


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
        database=_database(env),
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
            **_relay_liveness(env),
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


def _database(env: _Env) -> DatabaseSettings:
    return DatabaseSettings(
        url=_database_url(env),
        pool_size=env.integer("DB_POOL_SIZE", 10, low=1, high=200),
        connect_timeout=env.number("DB_CONNECT_TIMEOUT", 5.0, low=0.1),
        statement_timeout=env.number("DB_STATEMENT_TIMEOUT", 10.0),
        **_database_deadlines(env),
    )


def _database_deadlines(env: _Env) -> dict[str, float]:
    """DB_GIVE_UP_AFTER bounds every wait on PostgreSQL; the server's own limits must be
    shorter, or a statement the server would still finish is abandoned by the client."""
    give_up_after = env.number("DB_GIVE_UP_AFTER", 12.0, low=1.0)
    for name, default in (("DB_STATEMENT_TIMEOUT", 10.0), ("DB_LOCK_TIMEOUT", 5.0)):
        value = env.number(name, default)
        if not 0 < value < give_up_after:
            raise ConfigError(
                f"{name} must be above 0 and below DB_GIVE_UP_AFTER ({give_up_after}) (got {value})"
            )
    return {
        "lock_timeout": env.number("DB_LOCK_TIMEOUT", 5.0),
        "slow_wait": env.number("DB_SLOW_WAIT", 2.0, low=0.01),
        "give_up_after": give_up_after,
    }


class _RelayLiveness(TypedDict):
    lease_ttl: float
    fencing: bool
    transactional_id_prefix: str
    kafka_timeout: float


def _relay_liveness(env: _Env) -> _RelayLiveness:
    prefix = env.text("RELAY_TRANSACTIONAL_ID_PREFIX", "orders-relay")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,200}", prefix):
        raise ConfigError(
            "RELAY_TRANSACTIONAL_ID_PREFIX may hold only letters, digits, '.', '_' and '-'"
            f" (1 to 200 of them; got {prefix!r})"
        )
    return {
        "lease_ttl": env.number("RELAY_LEASE_TTL", 10.0, low=1.0),
        "fencing": env.choice("RELAY_FENCING", "true", ("true", "false")) == "true",
        "transactional_id_prefix": prefix,
        "kafka_timeout": env.number("RELAY_KAFKA_TIMEOUT", 5.0, low=1.0),
    }


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
    dlq_topic = env.topic("KAFKA_DLQ_TOPIC", f"{topic}.dlq")
    source = env.text("EVENT_SOURCE", "/order-service")
    return KafkaSettings(
        brokers=env.text("KAFKA_BROKERS", "localhost:9092"),
        topic=topic,
        dlq_topic=dlq_topic,
        group_id=env.text("KAFKA_GROUP_ID", "order-service"),
        routes=routes,
        source=source,
        inbound=_inbound_topics(
            env.text("KAFKA_INBOUND_TOPICS", default_inbound(topic)),
            ours={topic, dlq_topic, *routes.values()},
            own_source=source,
        ),
        security=_kafka_security(env),
    )


# --- KAFKA_INBOUND_TOPICS ------------------------------------------------------------------
INBOUND_VARIABLE = "KAFKA_INBOUND_TOPICS"
INBOUND_FORMAT = "topic=type[,type…]@source, space-separated, or 'none'"
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
_SOURCE = re.compile(r"[^\x00-\x20\x7f]{1,256}")  # a URI reference: no spaces or controls


def default_inbound(topic: str) -> str:
    """`<KAFKA_TOPIC>.fulfillment` carries shipped, delivered, cancelled from /fulfillment."""
    types = ",".join(sorted(INBOUND_TYPES))
    return f"{topic}.fulfillment={types}@/fulfillment"


def _inbound_topics(value: str, *, ours: set[str], own_source: str) -> tuple[InboundTopic, ...]:
    if value.lower() == "none":
        return ()
    rules = tuple(_inbound_rule(rule, ours, own_source) for rule in value.split())
    topics = [rule.topic for rule in rules]
    for topic in topics:
        if topics.count(topic) > 1:
            raise ConfigError(f"{INBOUND_VARIABLE} names topic {topic!r} twice")
    return rules


def _inbound_rule(rule: str, ours: set[str], own_source: str) -> InboundTopic:
    topic, has_types, rest = rule.partition("=")
    types, has_source, source = rest.partition("@")
    if not (has_types and has_source):
        raise ConfigError(f"{INBOUND_VARIABLE} must be {INBOUND_FORMAT} (got {rule!r})")
    if not _TOPIC_NAME.fullmatch(topic) or topic in {".", ".."}:
        raise ConfigError(f"{INBOUND_VARIABLE}: {topic!r} is not a valid Kafka topic name")
    if topic in ours:
        raise ConfigError(f"{INBOUND_VARIABLE}: {topic!r} is written by this service, not inbound")
    if not _SOURCE.fullmatch(source):
        raise ConfigError(f"{INBOUND_VARIABLE}: {topic} needs a source of 1-256 visible characters")
    if source == own_source:
        raise ConfigError(f"{INBOUND_VARIABLE}: {topic} may not claim our own source {source!r}")
    allowed = sorted(INBOUND_TYPES)
    names = types.split(",")
    if not all(name in allowed for name in names):
        wrong = next(name for name in names if name not in allowed)
        raise ConfigError(
            f"{INBOUND_VARIABLE}: {topic} may carry {', '.join(allowed)} (got {wrong!r})"
        )
    return InboundTopic(topic, frozenset(EventType(name) for name in names), source)


def _kafka_security(env: _Env) -> KafkaSecurity:
    protocol = cast(
        KafkaProtocol,
        env.choice("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", get_args(KafkaProtocol), upper=True),
    )
    sasl = protocol.startswith("SASL_")
    user, password = env.optional("KAFKA_SASL_USERNAME"), env.optional("KAFKA_SASL_PASSWORD")
    mechanism = env.optional("KAFKA_SASL_MECHANISM")
    if not sasl and (user or password or mechanism):
        raise ConfigError(
            "KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL is "
            f"{protocol}: use SASL_PLAINTEXT or SASL_SSL"
        )
    if sasl and not (user and password):
        raise ConfigError(
            f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
        )
    files = {
        name: _existing_file(env, f"KAFKA_{name.upper()}")
        for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location")
    }
    if files["ssl_certificate_location"] and not files["ssl_key_location"]:
        raise ConfigError("KAFKA_SSL_CERTIFICATE_LOCATION needs KAFKA_SSL_KEY_LOCATION")
    if any(files.values()) and not protocol.endswith("SSL"):
        raise ConfigError(f"KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL is {protocol}")
    mechanisms = get_args(SaslMechanism)
    return KafkaSecurity(
        protocol=protocol,
        sasl_mechanism=cast(
            SaslMechanism,
            env.choice("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", mechanisms, upper=True),
        )
        if sasl
        else None,
        sasl_username=user,
        sasl_password=password,
        ssl_key_password=env.optional("KAFKA_SSL_KEY_PASSWORD"),
        **files,
    )


def _existing_file(env: _Env, name: str) -> str | None:
    path = env.optional(name)
    if path is not None and not os.path.isfile(path):
        raise ConfigError(f"{name} names no readable file (got {path!r})")
    return path


def kafka_client_config(kafka: KafkaSettings) -> dict[str, str]:
    """The librdkafka settings every client of ours starts from: where the brokers are
    and how to authenticate. The one place our settings become librdkafka keys."""
    security = kafka.security
    found = {
        "bootstrap.servers": kafka.brokers,
        "security.protocol": security.protocol.lower(),
        "sasl.mechanisms": security.sasl_mechanism,
        "sasl.username": security.sasl_username,
        "sasl.password": security.sasl_password,
        "ssl.ca.location": security.ssl_ca_location,
        "ssl.certificate.location": security.ssl_certificate_location,
        "ssl.key.location": security.ssl_key_location,
        "ssl.key.password": security.ssl_key_password,
    }
    return {key: value for key, value in found.items() if value is not None}


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

    def choice(
        self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False
    ) -> str:
        value = self.optional(name) or default
        value = value.upper() if upper else value.lower()
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
