"""What a Kafka broker needs before our processes start: topics, SCRAM users and ACLs.

    python -m scripts.stack.kafka_init                  compose's `kafka-init` job
    python -m scripts.stack.kafka_init properties NAME  a `kcat -F` file for compose's broker

The job runs in our image (its `kafka-init` command) inside the broker container's
network namespace (`network_mode: service:kafka`), because that is the only place the
broker's admin listener can be reached: compose's broker cannot be given SCRAM users
before it starts (the official image has no variable for `kafka-storage format
--add-scram`), so it has a loopback-only SASL PLAIN listener whose one user is the
admin. The job connects there as `orders-admin` (KAFKA_BROKERS / KAFKA_SASL_* are set to
that listener), then, each step idempotent so every `make up` runs it again:

1. creates the topics the settings name (KAFKA_TOPIC, the routed, DLQ and inbound
   topics) with `make dev`'s partition counts, leaving existing ones as they are;
2. upserts a SCRAM-SHA-512 user per principal with the password from the environment
   (KAFKA_<NAME>_PASSWORD, no defaults: a changed password takes effect);
3. grants the ACLs of scripts/stack/principals.py (the same plan `make dev` grants);

and returns once every principal can log in where its clients connect
(KAFKA_CLIENT_BROKERS) and every ACL is in force, so the services started after it find
their rights in place.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from dotenv import dotenv_values

from scripts.stack import principals
from scripts.stack.waiting import wait_for

if TYPE_CHECKING:
    from app.config import KafkaSettings

# Where each principal's password comes from (compose.yaml, .env); none has a default.
PASSWORD_VARIABLES = {
    principals.ADMIN: "KAFKA_ADMIN_PASSWORD",
    principals.RELAY: "KAFKA_RELAY_PASSWORD",
    principals.CONSUMER: "KAFKA_CONSUMER_PASSWORD",
    principals.FULFILLMENT: "KAFKA_FULFILLMENT_PASSWORD",
    principals.UI: "KAFKA_UI_PASSWORD",
}
# The passwords end up quoted inside JAAS configurations (the broker's admin listener,
# Kafka UI) and in properties files: no quotes, backslashes, whitespace or controls.
SAFE_PASSWORD = re.compile(r"[A-Za-z0-9!#%&()*+,./:;<=>?@\[\]^_{|}~-]{16,256}")
CLIENT_BROKERS = "KAFKA_CLIENT_BROKERS"  # where the principals' own clients connect
MAIN_PARTITIONS = 6  # our topics and the inbound ones: as `make dev` (scripts/stack/infra.py)
DLQ_PARTITIONS = 1


def passwords_from(environ: Mapping[str, str]) -> dict[str, str]:
    """Each principal's password from `environ`; ValueError naming every variable that is
    unset, empty or unsafe to quote (so the job fails before it changes anything)."""
    missing = [name for name in PASSWORD_VARIABLES.values() if not environ.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)}: each Kafka principal's password")
    unsafe = [
        name for name in PASSWORD_VARIABLES.values() if not SAFE_PASSWORD.fullmatch(environ[name])
    ]
    if unsafe:
        raise ValueError(
            f"{', '.join(unsafe)}: 16 to 256 printable characters without quotes, "
            "backslashes or spaces (e.g. `openssl rand -hex 24`)"
        )
    return {principal: environ[name] for principal, name in PASSWORD_VARIABLES.items()}


def topic_partitions(kafka: KafkaSettings) -> dict[str, int]:
    """Every topic relay and consumer use, with its partition count."""
    found = dict.fromkeys(kafka.own_topics, MAIN_PARTITIONS)
    found.update((rule.topic, MAIN_PARTITIONS) for rule in kafka.inbound)
    found[kafka.dlq_topic] = DLQ_PARTITIONS
    return found


def topic_plan(kafka: KafkaSettings, viewers: tuple[str, ...] = ()) -> principals.TopicPlan:
    """The ACLs' subjects for these settings. Every inbound topic is written by the
    `fulfillment` principal: the one outside system a deployment of ours has."""
    routed = tuple(sorted(set(kafka.routes.values()) - {kafka.topic}))
    inbound = tuple(sorted(rule.topic for rule in kafka.inbound))
    return principals.TopicPlan(
        kafka.topic,
        kafka.dlq_topic,
        kafka.group_id,
        routed,
        {principals.FULFILLMENT: inbound} if inbound else {},
        viewers,
    )


def create_topics(admin: AdminClient, partitions: dict[str, int], timeout: float = 60) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(name, num_partitions=count, replication_factor=1)
        for name, count in partitions.items()
        if name not in existing
    ]
    if not wanted:
        return
    for future in admin.create_topics(wanted, operation_timeout=timeout).values():
        with contextlib.suppress(KafkaException):  # created meanwhile by someone else
            future.result(timeout)
    wait_for(
        lambda: set(partitions) <= set(admin.list_topics(timeout=5).topics),
        timeout=timeout,
        what=f"topics {sorted(partitions)}",
    )


def provision(
    admin: AdminClient, kafka: KafkaSettings, passwords: Mapping[str, str], client_brokers: str
) -> None:
    """Topics, users and ACLs for `kafka`'s settings, through `admin` (a super user)."""
    create_topics(admin, topic_partitions(kafka))
    principals.create_users(
        admin,
        passwords,
        lambda name: principals.client_config(client_brokers, name, passwords[name]),
    )
    principals.grant(admin, topic_plan(kafka, viewers=(principals.UI,)))


def init(environ: Mapping[str, str]) -> str:
    """The job: provision the broker KAFKA_BROKERS names as the admin KAFKA_SASL_* name;
    the line to print. ValueError/ConfigError for settings that cannot work."""
    from app import config  # noqa: PLC0415 - the settings' own defaults and checks

    passwords = passwords_from(environ)
    kafka = config.load(environ, env_file=None).kafka
    if kafka.security.sasl_username != principals.ADMIN:
        raise ValueError(f"KAFKA_SASL_USERNAME must be {principals.ADMIN} (it makes the users)")
    client_brokers = environ.get(CLIENT_BROKERS) or kafka.brokers
    admin = AdminClient({**config.kafka_client_config(kafka), "log_level": "0"})
    provision(admin, kafka, passwords, client_brokers)
    topics = ", ".join(sorted(topic_partitions(kafka)))
    users = ", ".join(sorted(passwords))
    return f"kafka-init: topics {topics}; users {users}; ACLs in force"


def properties(principal: str, brokers: str, environ: Mapping[str, str]) -> str:
    """A librdkafka properties file (`kcat -F`) for `principal` on compose's broker."""
    variable = PASSWORD_VARIABLES.get(principal)
    if variable is None:
        known = ", ".join(PASSWORD_VARIABLES)
        raise ValueError(f"unknown principal {principal!r} (one of {known})")
    if not environ.get(variable):
        raise ValueError(f"{variable} is not set (in .env or the environment)")
    config = principals.client_config(brokers, principal, environ[variable])
    return "".join(f"{key}={value}\n" for key, value in config.items())


def main(argv: Sequence[str] | None = None) -> None:
    """`kafka-init` (default) or `properties NAME`; exit 1 with one line on bad settings."""
    from app import config  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m scripts.stack.kafka_init")
    commands = parser.add_subparsers(dest="command")
    wanted = commands.add_parser("properties", help="print a kcat -F file for compose's broker")
    wanted.add_argument("principal", choices=sorted(PASSWORD_VARIABLES))
    wanted.add_argument("--brokers", help="default: localhost:KAFKA_PORT (9092)")
    wanted.add_argument("--env-file", default=".env", help="where the passwords are")
    args = parser.parse_args(argv)
    try:
        if args.command == "properties":
            found = dotenv_values(args.env_file) if os.path.exists(args.env_file) else {}
            environ = {**{k: v for k, v in found.items() if v}, **os.environ}
            brokers = args.brokers or f"localhost:{environ.get('KAFKA_PORT') or 9092}"
            sys.stdout.write(properties(args.principal, brokers, environ))
            return
        print(init(os.environ), flush=True)
    except (ValueError, TimeoutError, config.ConfigError, KafkaException) as exc:
        sys.exit(f"kafka-init: {exc}")


if __name__ == "__main__":
    main()
