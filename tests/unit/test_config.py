"""Settings: the seed's variable names, sane defaults, one clear line for a bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError, InboundTopic, kafka_client_config, load
from app.domain.events import EventType


def test_defaults_need_no_environment() -> None:
    settings = load({}, env_file=None)
    assert settings.database.url == (
        "postgresql+psycopg://postgres@localhost:5432/orders?sslmode=disable"
    )
    assert settings.kafka.brokers == "localhost:9092"
    assert (settings.kafka.topic, settings.kafka.dlq_topic) == ("orders", "orders.dlq")
    assert settings.kafka.group_id == "order-service"
    assert settings.http.port == 8080
    assert settings.log_level == "info"


def test_seed_variables_are_read() -> None:
    settings = load(
        {
            "KAFKA_BROKERS": "k1:9092,k2:9092",
            "KAFKA_TOPIC": "shop-orders",
            "KAFKA_GROUP_ID": "shop",
            "HTTP_PORT": "9000",
            "LOG_LEVEL": "DEBUG",
        },
        env_file=None,
    )
    assert settings.kafka.brokers == "k1:9092,k2:9092"
    assert (settings.kafka.topic, settings.kafka.dlq_topic) == ("shop-orders", "shop-orders.dlq")
    assert settings.kafka.group_id == "shop"
    assert settings.http.port == 9000
    assert settings.log_level == "debug"


def test_db_variables_are_assembled_into_a_psycopg_url_with_escaped_password() -> None:
    environ = {
        "DB_HOST": "db.internal",
        "DB_PORT": "6543",
        "DB_NAME": "shop",
        "DB_USER": "app",
        "DB_PASSWORD": "p@ss:w/rd?",
        "DB_SSL_MODE": "require",
    }
    assert load(environ, env_file=None).database.url == (
        "postgresql+psycopg://app:p%40ss%3Aw%2Frd%3F@db.internal:6543/shop?sslmode=require"
    )


def test_database_url_wins_over_db_variables() -> None:
    environ = {"DATABASE_URL": "postgresql://u:p@elsewhere:5433/db", "DB_HOST": "ignored"}
    assert load(environ, env_file=None).database.url == (
        "postgresql+psycopg://u:p@elsewhere:5433/db"
    )


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_database_url_gets_the_psycopg_driver(scheme: str) -> None:
    url = load({"DATABASE_URL": f"{scheme}://u@h/db"}, env_file=None).database.url
    assert url == "postgresql+psycopg://u@h/db"


def test_order_created_can_be_routed_to_the_seed_topic() -> None:
    kafka = load({"KAFKA_TOPIC_ORDER_CREATED": "kafka.orders.created"}, env_file=None).kafka
    assert kafka.topic_for(EventType.CREATED) == "kafka.orders.created"
    assert kafka.topic_for(EventType.CONFIRMED) == "orders"
    assert kafka.own_topics == ["kafka.orders.created", "orders"]
    assert kafka.consumed_topics == ["kafka.orders.created", "orders", "orders.fulfillment"]


def test_without_routes_everything_goes_to_the_main_topic() -> None:
    kafka = load({"KAFKA_TOPIC": "shop"}, env_file=None).kafka
    assert {kafka.topic_for(event_type) for event_type in EventType} == {"shop"}
    assert kafka.own_topics == ["shop"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HTTP_PORT", "abc"),
        ("HTTP_PORT", "70000"),
        ("HTTP_PORT", "0"),
        ("DB_PORT", "-1"),
        ("LOG_LEVEL", "loud"),
        ("DB_SSL_MODE", "maybe"),
        ("KAFKA_TOPIC", "bad topic"),
        ("KAFKA_TOPIC_ORDER_CREATED", "bad/topic"),
        ("DATABASE_URL", "mysql://x"),
        ("DATABASE_URL", "postgresql+asyncpg://u@h/db"),
        ("RELAY_POLL_INTERVAL", "soon"),
        ("CONSUMER_MAX_ATTEMPTS", "0"),
    ],
)
def test_bad_value_stops_with_one_line_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load({name: value}, env_file=None)
    message = str(error.value)
    assert name in message
    assert "\n" not in message


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_ttl_is_a_config_error(value: str) -> None:
    with pytest.raises(ConfigError, match="IDEMPOTENCY_TTL_HOURS"):
        load({"IDEMPOTENCY_TTL_HOURS": value}, env_file=None)


def test_nan_poll_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="RELAY_POLL_INTERVAL"):
        load({"RELAY_POLL_INTERVAL": "nan"}, env_file=None)


@pytest.mark.parametrize("value", [".", ".."])
def test_dot_topic_names_kafka_refuses_are_config_errors(value: str) -> None:
    with pytest.raises(ConfigError, match="KAFKA_TOPIC"):
        load({"KAFKA_TOPIC": value}, env_file=None)


def test_database_url_is_not_checked_against_db_ssl_mode() -> None:
    environ = {"DATABASE_URL": "postgresql://u@h/db", "DB_SSL_MODE": "maybe"}
    assert load(environ, env_file=None).database.url == "postgresql+psycopg://u@h/db"


def test_env_file_fills_in_what_the_environment_leaves_out(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("HTTP_PORT=9090\nKAFKA_TOPIC=from-file\n")
    settings = load({"HTTP_PORT": "7070"}, env_file=str(env_file))
    assert settings.http.port == 7070
    assert settings.kafka.topic == "from-file"


def test_bad_value_in_env_file_is_reported_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LOG_LEVEL=loud\n")
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        load({}, env_file=str(env_file))


def test_missing_env_file_means_defaults(tmp_path: Path) -> None:
    settings = load({}, env_file=str(tmp_path / "absent.env"))
    assert settings.http.port == 8080


# --- inbound topics ------------------------------------------------------------------------

SHIPPED, DELIVERED, CANCELLED = EventType.SHIPPED, EventType.DELIVERED, EventType.CANCELLED


def test_fulfillment_is_the_default_inbound_topic_and_is_consumed() -> None:
    kafka = load({}, env_file=None).kafka
    assert kafka.inbound == (
        InboundTopic(
            "orders.fulfillment", frozenset({SHIPPED, DELIVERED, CANCELLED}), "/fulfillment"
        ),
    )
    assert kafka.consumed_topics == ["orders", "orders.fulfillment"]
    assert load({"KAFKA_TOPIC": "shop"}, env_file=None).kafka.consumed_topics == [
        "shop",
        "shop.fulfillment",
    ]


def test_inbound_topics_are_configured_per_topic() -> None:
    value = "wh.events=order.shipped,order.delivered@urn:warehouse:7  returns=order.cancelled@/rma"
    kafka = load({"KAFKA_INBOUND_TOPICS": value}, env_file=None).kafka
    assert kafka.inbound == (
        InboundTopic("wh.events", frozenset({SHIPPED, DELIVERED}), "urn:warehouse:7"),
        InboundTopic("returns", frozenset({CANCELLED}), "/rma"),
    )
    assert kafka.consumed_topics == ["orders", "returns", "wh.events"]


def test_none_means_no_inbound_topics() -> None:
    kafka = load({"KAFKA_INBOUND_TOPICS": "none"}, env_file=None).kafka
    assert (kafka.inbound, kafka.consumed_topics) == ((), ["orders"])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("orders.fulfillment", "must be topic=type[,type…]@source"),
        ("f=order.shipped", "must be topic=type[,type…]@source"),
        ("f=order.shipped@", "needs a source of 1-256 visible characters"),
        ("f=order.shipped@/a\x01b", "needs a source"),
        ("f=order.shipped@/" + "x" * 300, "needs a source"),
        ("f=@/fulfillment", "(got '')"),
        (
            "f=order.confirmed@/fulfillment",
            "may carry order.cancelled, order.delivered, order.shipped",
        ),
        ("f=order.created@/fulfillment", "(got 'order.created')"),
        ("f=order.failed@/fulfillment", "(got 'order.failed')"),
        ("f=order.shipped@/order-service", "may not claim our own source"),
        ("orders=order.shipped@/fulfillment", "'orders' is written by this service"),
        ("orders.dlq=order.shipped@/fulfillment", "'orders.dlq' is written by this service"),
        ("a/b=order.shipped@/f", "'a/b' is not a valid Kafka topic name"),
        ("a=order.shipped@/f a=order.cancelled@/g", "names topic 'a' twice"),
    ],
)
def test_a_wrong_inbound_setting_is_one_line(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load({"KAFKA_INBOUND_TOPICS": value}, env_file=None)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
    assert str(error.value).startswith("KAFKA_INBOUND_TOPICS")


# --- Kafka client security (issue 11) -------------------------------------------------
SASL = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_plaintext",
    "KAFKA_SASL_USERNAME": "orders-relay",
    "KAFKA_SASL_PASSWORD": "s3cret",
}


def test_kafka_is_plaintext_without_security_settings() -> None:
    client = kafka_client_config(load({}, env_file=None).kafka)
    assert client == {"bootstrap.servers": "localhost:9092", "security.protocol": "plaintext"}


def test_sasl_settings_become_librdkafka_keys_with_scram_sha_512_by_default() -> None:
    client = kafka_client_config(load(SASL, env_file=None).kafka)
    assert client == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "orders-relay",
        "sasl.password": "s3cret",
    }


def test_mtls_files_become_librdkafka_keys(tmp_path: Path) -> None:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN-----")
    environ = {
        **SASL,
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "scram-sha-256",
        "KAFKA_SSL_CA_LOCATION": str(files["ca"]),
        "KAFKA_SSL_CERTIFICATE_LOCATION": str(files["cert"]),
        "KAFKA_SSL_KEY_LOCATION": str(files["key"]),
    }
    client = kafka_client_config(load(environ, env_file=None).kafka)
    assert client["security.protocol"] == "sasl_ssl"
    assert client["sasl.mechanisms"] == "SCRAM-SHA-256"
    assert client["ssl.ca.location"] == str(files["ca"])
    assert client["ssl.certificate.location"] == str(files["cert"])
    assert client["ssl.key.location"] == str(files["key"])


def test_the_kafka_password_is_not_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(load(SASL, env_file=None))


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        ({**SASL, "KAFKA_SASL_PASSWORD": ""}, "KAFKA_SASL_PASSWORD"),
        ({**SASL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "SASL_PLAINTEXT"),
        ({**SASL, "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
        ({"KAFKA_SSL_CA_LOCATION": __file__}, "KAFKA_SECURITY_PROTOCOL is PLAINTEXT"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTIFICATE_LOCATION": __file__},
            "KAFKA_SSL_KEY_LOCATION",
        ),
    ],
)
def test_inconsistent_kafka_security_stops_at_start(environ: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named) as refused:
        load(environ, env_file=None)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "bad",
    [
        {"DB_STATEMENT_TIMEOUT": "20"},  # the client would abandon what the server still runs
        {"DB_STATEMENT_TIMEOUT": "0"},  # no server-side limit at all
        {"DB_LOCK_TIMEOUT": "12"},
        {"DB_LOCK_TIMEOUT": "-1"},
        {"DB_GIVE_UP_AFTER": "0.5"},
        {"DB_GIVE_UP_AFTER": "nan"},
        {"DB_SLOW_WAIT": "soon"},
    ],
)
def test_database_deadlines_that_cannot_work_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        load(bad, env_file=None)


def test_database_deadlines_default_to_the_liveness_bounds() -> None:
    database = load({}, env_file=None).database
    assert (database.give_up_after, database.lock_timeout, database.slow_wait) == (12.0, 5.0, 2.0)
    assert database.statement_timeout < database.give_up_after


@pytest.mark.parametrize(
    "bad",
    [
        {"RELAY_LEASE_TTL": "0"},
        {"RELAY_LEASE_TTL": "inf"},
        {"RELAY_FENCING": "maybe"},
        {"RELAY_TRANSACTIONAL_ID_PREFIX": "orders relay"},
        {"RELAY_TRANSACTIONAL_ID_PREFIX": "x" * 201},
        {"RELAY_TRANSACTIONAL_ID_PREFIX": "orders/relay"},
        {"RELAY_KAFKA_TIMEOUT": "0.1"},
    ],
)
def test_relay_liveness_settings_that_cannot_work_are_refused(bad: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        load(bad, env_file=None)


def test_relay_liveness_defaults() -> None:
    relay = load({}, env_file=None).relay
    assert (relay.lease_ttl, relay.fencing, relay.transactional_id_prefix) == (
        10.0,
        True,
        "orders-relay",
    )
    assert load({"RELAY_FENCING": "FALSE"}, env_file=None).relay.fencing is False
