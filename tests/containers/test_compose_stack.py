"""compose.yaml, as a real Compose implementation resolves it: services, images,
start order, restart policies, health checks, ports and `.env` handling."""

from __future__ import annotations

import re
from graphlib import TopologicalSorter
from pathlib import Path

import pytest

from scripts.container import ROLES

from .conftest import DB_LOGINS, KAFKA_LOGINS, KAFKA_PASSWORDS, PASSWORD, Resolver
from .readers import (
    COMPOSE_FILE,
    IMAGE_SERVICES,
    ONE_SHOT,
    Service,
    depends_on,
    environment,
    healthcheck_disabled,
    published,
    published_addresses,
    run_compose_config,
    unescape,
    volumes,
)

EXPECTED = {"postgres", "kafka", "kafka-init", "kafka-ui", "migrate", "api", "relay", "consumer"}
LONG_RUNNING = EXPECTED - set(ONE_SHOT)


def test_compose_resolves_the_whole_stack_without_an_env_file(
    services: dict[str, Service],
) -> None:
    assert set(services) == EXPECTED


def test_our_services_share_one_image_built_from_the_containerfile(
    services: dict[str, Service],
) -> None:
    images = {services[name]["image"] for name in IMAGE_SERVICES}
    assert len(images) == 1, f"one image for every process, found {images}"
    for name in IMAGE_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == COMPOSE_FILE.parent
        assert build["dockerfile"] == "Containerfile"


def test_third_party_images_are_pinned_and_official(services: dict[str, Service]) -> None:
    for name in EXPECTED - set(IMAGE_SERVICES):
        image = services[name]["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin a tag, not {image!r}"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["kafka-ui"]["image"].split(":")[0] in {
        "kafbat/kafka-ui",
        "provectuslabs/kafka-ui",
    }
    repository, _, tag = services["postgres"]["image"].partition(":")
    assert repository == "postgres"
    assert int(re.match(r"\d+", tag)[0]) >= 15  # type: ignore[index]


def test_postgres_keeps_its_data_and_reports_ready_over_tcp(services: dict[str, Service]) -> None:
    postgres = services["postgres"]
    assert volumes(postgres)["/var/lib/postgresql/data"] == "postgres-data"
    test = " ".join(postgres["healthcheck"]["test"])
    assert "pg_isready" in test
    # The first start initialises through a socket-only server: TCP is the honest probe.
    assert "-h 127.0.0.1" in test or "-h localhost" in test


def test_kafka_keeps_its_data_and_probes_the_address_containers_use(
    services: dict[str, Service],
) -> None:
    kafka = services["kafka"]
    log_dirs = environment(kafka)["KAFKA_LOG_DIRS"]
    assert volumes(kafka)[log_dirs] == "kafka-data"
    # The SCRAM users do not exist before kafka-init: the probe logs in on the admin
    # listener, as its one user, with the listener's own JAAS line.
    probe = unescape(" ".join(kafka["healthcheck"]["test"]))
    assert "--bootstrap-server 127.0.0.1:9094" in probe and "--command-config" in probe
    assert "$KAFKA_LISTENER_NAME_LOCAL_PLAIN_SASL_JAAS_CONFIG" in probe
    assert "sasl.mechanism=PLAIN" in probe


def test_start_order(services: dict[str, Service]) -> None:
    expected = {
        "postgres": {},
        "kafka": {},
        "kafka-init": {"kafka": "service_healthy"},
        "kafka-ui": {"kafka-init": "service_completed_successfully"},
        "migrate": {"postgres": "service_healthy"},
        "api": {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
        "relay": {
            "migrate": "service_completed_successfully",
            "kafka-init": "service_completed_successfully",
        },
    }
    expected["consumer"] = expected["relay"]
    assert {name: depends_on(service) for name, service in services.items()} == expected


def test_every_wait_is_one_that_can_be_satisfied(services: dict[str, Service]) -> None:
    """Healthy needs a health check; completed needs a job that ends; no cycles."""
    for name, service in services.items():
        for dependency, condition in depends_on(service).items():
            target = services[dependency]
            if condition == "service_healthy":
                has_check = "test" in target.get("healthcheck", {}) or dependency == "api"
                assert has_check and not healthcheck_disabled(target), f"{name} -> {dependency}"
            if condition == "service_completed_successfully":
                assert dependency in ONE_SHOT, f"{name} waits for {dependency} to exit"
    order = list(
        TopologicalSorter({n: set(depends_on(s)) for n, s in services.items()}).static_order()
    )
    assert order.index("migrate") < order.index("api")
    first_client = min(order.index(name) for name in ("relay", "consumer", "kafka-ui"))
    assert order.index("kafka") < order.index("kafka-init") < first_client


def test_restart_policies(services: dict[str, Service]) -> None:
    for name in LONG_RUNNING:
        assert services[name].get("restart") in {"unless-stopped", "always", "on-failure"}, name
    for name in ONE_SHOT:
        assert services[name].get("restart", "no") == "no", f"{name} runs once"


def test_each_long_running_process_of_ours_reports_health(services: dict[str, Service]) -> None:
    assert "healthcheck" not in services["api"], "the api keeps the image's HEALTHCHECK"
    for role in ("relay", "consumer"):
        probe = services[role]["healthcheck"]["test"]
        assert probe == ["CMD", "python", "-m", "scripts.container", "healthcheck", role]
    for job in ONE_SHOT:
        assert healthcheck_disabled(services[job]), f"{job}: a one-shot job has nothing to probe"


def test_processes_get_time_to_drain_on_stop(services: dict[str, Service]) -> None:
    for name in ("api", "relay", "consumer"):
        grace = services[name].get("stop_grace_period", "10s")
        assert re.fullmatch(r"\d+s", grace) and int(grace[:-1]) >= 20, f"{name}: {grace}"


def test_published_ports(services: dict[str, Service]) -> None:
    assert published(services["api"]) == {8080: 8080}
    assert published(services["kafka-ui"]) == {8081: 8080}
    assert published(services["postgres"]) == {5432: 5432}
    assert set(published(services["kafka"])) == {9092}
    for name in ("migrate", "relay", "consumer", "kafka-init"):
        assert published(services[name]) == {}, name


def test_published_ports_are_on_loopback_unless_asked(resolve: Resolver) -> None:
    for name in ("api", "kafka-ui", "postgres", "kafka"):
        assert published_addresses(resolve({})[name]) == {"127.0.0.1"}, name
    opened = resolve({"PUBLISH_HOST": "0.0.0.0", "KAFKA_PORT": "29092", "KAFKA_UI_PORT": "8090"})
    for name in ("api", "kafka-ui", "postgres", "kafka"):
        assert published_addresses(opened[name]) == {"0.0.0.0"}, name
    assert published(opened["kafka-ui"]) == {8090: 8080}
    kafka = opened["kafka"]
    assert published(kafka) == {29092: 19092}
    # The host's clients are sent back to the port they came in through.
    assert "EXTERNAL://localhost:29092" in environment(kafka)["KAFKA_ADVERTISED_LISTENERS"]


def test_env_file_settings_reach_the_stack_but_not_host_addresses(resolve: Resolver) -> None:
    dotenv = {
        "DB_HOST": "localhost",  # what a .env for `make dev` says: not for containers
        "KAFKA_BROKERS": "localhost:9092",
        "DATABASE_URL": "postgresql://me@localhost:5432/orders",
        "HTTP_HOST": "127.0.0.1",
        "DB_PORT": "6543",
        "HTTP_PORT": "9000",
        "DB_USER": "shop",
        "DB_PASSWORD": "s3cret",
        "DB_NAME": "shopdb",
        "KAFKA_TOPIC": "shop.orders",
        "KAFKA_GROUP_ID": "shop-service",
        "LOG_LEVEL": "debug",
        "RELAY_BATCH_SIZE": "123",
    }
    stack = resolve(dotenv)
    postgres = environment(stack["postgres"])
    for name in IMAGE_SERVICES:
        env = environment(stack[name])
        assert env["DB_HOST"] == "postgres" and env["DB_PORT"] == "5432"
        # kafka-init alone talks to the admin listener, from inside the broker's namespace
        kafka_at = "127.0.0.1:9094" if name == "kafka-init" else "kafka:9092"
        assert env["KAFKA_BROKERS"] == kafka_at
        assert env["HTTP_HOST"] == "0.0.0.0" and env["HTTP_PORT"] == "8080"
        assert "DATABASE_URL" not in env
        assert env["DB_NAME"] == postgres["POSTGRES_DB"] == "shopdb"
        if name == "migrate":  # the owner, who is PostgreSQL's superuser
            assert (env["DB_USER"], env["DB_PASSWORD"]) == (
                postgres["POSTGRES_USER"],
                postgres["POSTGRES_PASSWORD"],
            )
            assert (env["DB_USER"], env["DB_PASSWORD"]) == ("shop", "s3cret")
        elif name == "kafka-init":  # no database at all
            assert (env["DB_USER"], env["DB_PASSWORD"]) == ("", "")
        else:  # its own login: DB_USER in .env names the owner only
            user, variable = DB_LOGINS[name]
            assert (env["DB_USER"], env["DB_PASSWORD"]) == (user, PASSWORD[variable])
        assert env["KAFKA_TOPIC"] == "shop.orders" and env["KAFKA_GROUP_ID"] == "shop-service"
        assert env["LOG_LEVEL"] == "debug" and env["RELAY_BATCH_SIZE"] == "123"
    assert published(stack["api"]) == {9000: 8080}
    assert published(stack["postgres"]) == {6543: 5432}
    assert environment(stack["kafka-init"])["KAFKA_TOPIC"] == "shop.orders"


def test_a_make_dev_env_file_does_not_pick_kafka_identities(resolve: Resolver) -> None:
    """A .env written for `make dev` (or by hand) names one principal for every process:
    under compose each process is still itself, and the api holds no Kafka secret."""
    stack = resolve(
        {
            "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "PLAIN",
            "KAFKA_SASL_USERNAME": "orders-admin",
            "KAFKA_SASL_PASSWORD": "the-admins-password",
            "KAFKA_SSL_CA_LOCATION": "/etc/ssl/ca.pem",
        }
    )
    for name, (user, variable) in KAFKA_LOGINS.items():
        env = environment(stack[name])
        mechanism = "PLAIN" if name == "kafka-init" else "SCRAM-SHA-512"
        assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == (
            "SASL_PLAINTEXT",
            mechanism,
        ), name
        assert (env["KAFKA_SASL_USERNAME"], env["KAFKA_SASL_PASSWORD"]) == (
            user,
            PASSWORD[variable],
        ), name
        assert env["KAFKA_SSL_CA_LOCATION"] == "", name
    for name in ("api", "migrate"):
        env = environment(stack[name])
        assert env["KAFKA_SASL_USERNAME"] == env["KAFKA_SASL_PASSWORD"] == "", name
        assert not {k for k in env if k in KAFKA_PASSWORDS}, name


def test_each_kafka_password_reaches_only_its_principal(resolve: Resolver) -> None:
    """The broker's admin listener and kafka-init get the admin's; kafka-init makes every
    user; each process and Kafka UI get their own and nobody else's."""
    stack = resolve({})
    jaas = environment(stack["kafka"])["KAFKA_LISTENER_NAME_LOCAL_PLAIN_SASL_JAAS_CONFIG"]
    admin = PASSWORD["KAFKA_ADMIN_PASSWORD"]
    assert f'username="orders-admin" password="{admin}"' in jaas
    assert f'user_orders-admin="{admin}";' in jaas
    init = environment(stack["kafka-init"])
    assert {name: init[name] for name in KAFKA_PASSWORDS} == {
        name: PASSWORD[name] for name in KAFKA_PASSWORDS
    }
    for name in ("relay", "consumer"):
        env = environment(stack[name])
        assert not set(env) & set(KAFKA_PASSWORDS), name
        others = {PASSWORD[v] for v in KAFKA_PASSWORDS} - {env["KAFKA_SASL_PASSWORD"]}
        assert not others & set(env.values()), name
    ui = environment(stack["kafka-ui"])["KAFKA_CLUSTERS_0_PROPERTIES_SASL_JAAS_CONFIG"]
    ui_password = PASSWORD["KAFKA_UI_PASSWORD"]
    assert f'username="orders-ui" password="{ui_password}";' in ui
    assert environment(stack["kafka-ui"])["KAFKA_CLUSTERS_0_READONLY"] == "true"


@pytest.mark.parametrize("dotenv", [{}, {"DB_PASSWORD": ""}], ids=["no .env", "empty"])
def test_compose_refuses_to_run_without_a_database_password(
    dotenv: dict[str, str], tmp_path: Path
) -> None:
    """No default password: an unchanged .env.example (empty) is refused, saying why."""
    done = run_compose_config(COMPOSE_FILE, dotenv, tmp_path)
    assert done.returncode != 0
    assert "set DB_PASSWORD in .env" in done.stderr


@pytest.mark.parametrize(
    "variable",
    ["DB_API_PASSWORD", "DB_RELAY_PASSWORD", "DB_CONSUMER_PASSWORD", *KAFKA_PASSWORDS],
)
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_to_run_without_each_process_password(
    variable: str, value: str | None, tmp_path: Path
) -> None:
    """No process's database login and no Kafka principal has a default password."""
    dotenv = {k: v for k, v in PASSWORD.items() if k != variable}
    if value is not None:
        dotenv[variable] = value
    done = run_compose_config(COMPOSE_FILE, dotenv, tmp_path)
    assert done.returncode != 0
    assert f"set {variable} in .env" in done.stderr


def test_the_password_set_is_the_one_postgres_and_the_app_get(resolve: Resolver) -> None:
    hostile = {
        "DB_PASSWORD": "s3cret with 'quotes' & spaces",
        "DB_API_PASSWORD": "a'pi\"; DROP ROLE orders_api; --",
        "DB_RELAY_PASSWORD": "relay @:/?#%",
        "DB_CONSUMER_PASSWORD": "consumer\ttab",
    }
    stack = resolve(hostile)
    password = environment(stack["postgres"])["POSTGRES_PASSWORD"]
    assert password == "s3cret with 'quotes' & spaces"
    migrate = environment(stack["migrate"])
    assert migrate["DB_PASSWORD"] == password
    for name in ("api", "relay", "consumer"):
        user, variable = DB_LOGINS[name]
        assert environment(stack[name])["DB_PASSWORD"] == hostile[variable] == migrate[variable]
        assert environment(stack[name])["DB_USER"] == user
        assert variable not in environment(stack[name]), "a process sees its own password only"


def test_our_services_run_without_privileges(services: dict[str, Service]) -> None:
    for name in IMAGE_SERVICES:
        service = services[name]
        assert service["read_only"] is True, name
        assert [t.split(":")[0] for t in service["tmpfs"]] == ["/tmp"], name
        assert service["cap_drop"] == ["ALL"] and not service.get("cap_add"), name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["pids_limit"] > 0, name
        limit = str(service.get("mem_limit") or service["deploy"]["resources"]["limits"]["memory"])
        assert re.fullmatch(r"\d+[kmg]?b?", limit.lower()), (name, limit)


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    """The resolver validates: the same file with one wrong word is refused."""
    broken = tmp_path / "compose.yaml"
    text = COMPOSE_FILE.read_text()
    assert "condition: service_completed_successfully" in text
    broken.write_text(
        text.replace("condition: service_completed_successfully", "condition: service_finished", 1)
    )
    done = run_compose_config(broken, PASSWORD, tmp_path)
    assert done.returncode != 0
    assert "service_finished" in done.stderr or "condition" in done.stderr


@pytest.mark.parametrize("name", sorted(IMAGE_SERVICES))
def test_image_services_run_one_of_the_images_roles(
    services: dict[str, Service], name: str
) -> None:
    role, *_ = services[name]["command"]
    assert role in ROLES, f"{name} runs {role!r}, which the image's entrypoint does not know"
