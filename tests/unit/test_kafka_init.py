"""compose's kafka-init job, without a broker: what it refuses, and the plan it applies."""

from __future__ import annotations

import pytest

from app import config
from scripts.stack import kafka_init, principals

GOOD = {
    variable: f"secret-for-{principal}-0123"
    for principal, variable in kafka_init.PASSWORD_VARIABLES.items()
}


def test_every_principal_gets_the_password_its_variable_holds() -> None:
    found = kafka_init.passwords_from(GOOD)
    assert set(found) == {*principals.PRINCIPALS, principals.UI}
    assert found[principals.RELAY] == GOOD["KAFKA_RELAY_PASSWORD"]


@pytest.mark.parametrize("variable", sorted(kafka_init.PASSWORD_VARIABLES.values()))
@pytest.mark.parametrize("value", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_a_missing_password_is_named(variable: str, value: str | None) -> None:
    environ = {k: v for k, v in GOOD.items() if k != variable}
    if value is not None:
        environ[variable] = value
    with pytest.raises(ValueError, match=variable):
        kafka_init.passwords_from(environ)


@pytest.mark.parametrize(
    "password",
    [
        'quote"breaks-the-jaas-line',
        "back\\slash-escapes-in-jaas",
        "space inside the password",
        "new\nline-in-properties-file",
        "short",
        "x" * 257,
        "nul\x00-character-in-it-here",
    ],
    ids=["quote", "backslash", "space", "newline", "short", "long", "nul"],
)
def test_a_password_that_cannot_be_quoted_is_refused(password: str) -> None:
    """It would end up inside a JAAS line or a properties file, where it could end the
    value early and add options of its own."""
    with pytest.raises(ValueError, match="KAFKA_UI_PASSWORD"):
        kafka_init.passwords_from({**GOOD, "KAFKA_UI_PASSWORD": password})


def kafka_settings(**environ: str) -> config.KafkaSettings:
    return config.load(environ=environ, env_file=None).kafka


def test_without_inbound_topics_fulfillment_is_granted_nothing() -> None:
    plan = kafka_init.topic_plan(kafka_settings(KAFKA_INBOUND_TOPICS="none"))
    users = {binding.principal for binding in principals.acl_bindings(plan)}
    assert f"User:{principals.FULFILLMENT}" not in users
    assert kafka_init.topic_partitions(kafka_settings(KAFKA_INBOUND_TOPICS="none")) == {
        "orders": 6,
        "orders.dlq": 1,
    }


def test_the_viewer_may_write_alter_or_delete_nothing() -> None:
    plan = kafka_init.topic_plan(kafka_settings(), viewers=(principals.UI,))
    operations = {
        binding.operation.name
        for binding in principals.acl_bindings(plan)
        if binding.principal == f"User:{principals.UI}"
    }
    assert operations == {"DESCRIBE", "DESCRIBE_CONFIGS", "READ"}


def test_properties_for_kcat_name_the_principal_and_its_password() -> None:
    text = kafka_init.properties(principals.FULFILLMENT, "localhost:19092", GOOD)
    lines = dict(line.split("=", 1) for line in text.splitlines())
    assert lines == {
        "bootstrap.servers": "localhost:19092",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "fulfillment",
        "sasl.password": GOOD["KAFKA_FULFILLMENT_PASSWORD"],
    }


@pytest.mark.parametrize(
    ("principal", "environ", "message"),
    [
        ("root", GOOD, "unknown principal"),
        ("fulfillment", {}, "KAFKA_FULFILLMENT_PASSWORD is not set"),
    ],
)
def test_properties_refuse_what_they_cannot_write(
    principal: str, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        kafka_init.properties(principal, "localhost:9092", environ)


def test_the_job_refuses_to_run_as_anyone_but_the_admin() -> None:
    environ = {
        **GOOD,
        "KAFKA_BROKERS": "127.0.0.1:1",  # never reached: refused before connecting
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "PLAIN",
        "KAFKA_SASL_USERNAME": principals.RELAY,
        "KAFKA_SASL_PASSWORD": GOOD["KAFKA_RELAY_PASSWORD"],
    }
    with pytest.raises(ValueError, match="must be orders-admin"):
        kafka_init.init(environ)
