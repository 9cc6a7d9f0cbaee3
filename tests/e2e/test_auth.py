"""Who may do what, over real HTTP against the real API process: tokens, scopes, ownership,
per-principal idempotency keys and cursors, and what the history says about who acted."""

from __future__ import annotations

import copy
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from scripts.stack.paths import free_port
from scripts.stack.processes import child_env
from tests.support.pipeline import SEED_ORDER, Pipeline
from tests.support.rows import row_counts
from tests.support.servers import PostgresServer, api_alone
from tests.support.tokens import READ_ONLY, SEED_CUSTOMER, hostile_tokens

ORDERS = "/api/v1/orders"


def order_for(customer_id: str | None) -> dict[str, Any]:
    body = copy.deepcopy(SEED_ORDER)
    if customer_id is None:
        del body["customer_id"]
    else:
        body["customer_id"] = customer_id
    return body


@pytest.fixture
def alice(api: Pipeline) -> str:
    return str(uuid.uuid4())


@pytest.fixture
def bob(api: Pipeline) -> str:
    return str(uuid.uuid4())


def test_no_token_is_401_with_a_bearer_challenge_and_writes_nothing(
    api: Pipeline, module_database_url: str
) -> None:
    before = row_counts(module_database_url)
    with httpx.Client(base_url=api.api_url) as anonymous:
        response = anonymous.post(ORDERS, json=SEED_ORDER)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="orders"'  # RFC 6750 §3.1
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:orders:problem:invalid-token"
    assert row_counts(module_database_url) == before


@pytest.mark.parametrize("name", list(hostile_tokens(Pipeline.key)))
def test_a_bad_token_is_401_invalid_token(api: Pipeline, name: str) -> None:
    header, value = hostile_tokens(api.key)[name]
    with httpx.Client(base_url=api.api_url) as anonymous:
        response = anonymous.get(ORDERS, headers={header: value})
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ") and 'error="invalid_token"' in challenge


def test_a_missing_scope_is_403_insufficient_scope(api: Pipeline) -> None:
    with api.client(token=api.key.token(SEED_CUSTOMER, READ_ONLY)) as reader:
        assert reader.get(ORDERS).status_code == 200
        response = reader.post(ORDERS, json=SEED_ORDER)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["type"] == "urn:orders:problem:insufficient-scope"


def test_public_paths_need_no_token(api: Pipeline) -> None:
    with httpx.Client(base_url=api.api_url) as anonymous:
        for path in ("/health/live", "/health/ready", "/schema/openapi.json", "/schema/docs"):
            assert anonymous.get(path).status_code == 200, path
        assert anonymous.get("/metrics").status_code == 404  # on its own port now
    assert httpx.get(api.metrics_url).status_code == 200


def test_a_customer_sees_and_acts_on_its_own_orders_only(
    api: Pipeline, alice: str, bob: str
) -> None:
    with api.customer_client(alice) as as_alice, api.customer_client(bob) as as_bob:
        created = as_alice.post(ORDERS, json=order_for(None))  # customer_id from the token
        assert created.status_code == 201, created.text
        order = created.json()["order"]
        assert order["customer_id"] == alice
        path = f"{ORDERS}/{order['id']}"

        assert as_alice.get(path).status_code == 200
        for response in (
            as_bob.get(path),
            as_bob.get(f"{path}/history"),
            as_bob.post(f"{path}/cancel"),
        ):
            assert response.status_code == 404, response.text
            assert response.json()["type"] == "urn:orders:problem:order-not-found"
        assert as_bob.get(ORDERS).json()["orders"] == []
        assert [o["id"] for o in as_alice.get(ORDERS).json()["orders"]] == [order["id"]]

        refused = as_bob.get(ORDERS, params={"customer_id": alice})
        assert refused.status_code == 403
        assert refused.json()["type"] == "urn:orders:problem:forbidden"
        for_alice = as_bob.post(ORDERS, json=order_for(alice))
        assert for_alice.status_code == 403
        assert for_alice.json()["type"] == "urn:orders:problem:forbidden"
        assert as_alice.get(path).json()["order"]["status"] == "pending"  # bob's cancel: none


def test_staff_see_and_cancel_everything(api: Pipeline, alice: str, bob: str) -> None:
    with api.customer_client(alice) as as_alice, api.customer_client(bob) as as_bob:
        mine = as_alice.post(ORDERS, json=order_for(None)).json()["order"]["id"]
        theirs = as_bob.post(ORDERS, json=order_for(None)).json()["order"]["id"]
    with api.client(token=api.key.admin("support-7")) as staff:
        listed = {o["id"] for o in staff.get(ORDERS, params={"limit": 100}).json()["orders"]}
        assert {mine, theirs} <= listed
        assert [o["id"] for o in staff.get(ORDERS, params={"customer_id": bob}).json()["orders"]]
        assert staff.get(f"{ORDERS}/{mine}").status_code == 200
        assert staff.post(f"{ORDERS}/{mine}/cancel").status_code == 200
        history = staff.get(f"{ORDERS}/{mine}/history").json()["history"]
    assert [entry["actor"] for entry in history] == [f"customer:{alice}", "staff:support-7"]


def test_two_customers_with_one_idempotency_key_get_two_orders(
    api: Pipeline, alice: str, bob: str
) -> None:
    key = {"Idempotency-Key": "order-1"}  # the kind of key two clients may well both pick
    with api.customer_client(alice) as as_alice, api.customer_client(bob) as as_bob:
        first = as_alice.post(ORDERS, json=order_for(None), headers=key)
        second = as_bob.post(ORDERS, json=order_for(None), headers=key)
        replay = as_alice.post(ORDERS, json=order_for(None), headers=key)
    assert first.status_code == second.status_code == replay.status_code == 201
    assert first.json()["order"]["id"] != second.json()["order"]["id"]
    assert second.json()["order"]["customer_id"] == bob
    assert replay.json()["order"]["id"] == first.json()["order"]["id"]
    assert "idempotent-replayed" not in second.headers


def test_cursors_are_signed_and_belong_to_their_caller(api: Pipeline, alice: str) -> None:
    with api.customer_client(alice) as as_alice:
        for _ in range(2):
            assert as_alice.post(ORDERS, json=order_for(None)).status_code == 201
        cursor = as_alice.get(ORDERS, params={"limit": 1}).json()["next_cursor"]
        assert as_alice.get(ORDERS, params={"limit": 1, "cursor": cursor}).status_code == 200
        payload, mac = cursor.split(".")
        forged = [f"{payload[:-2]}AA.{mac}", f"{payload}.{mac[:-2]}AA", payload, f".{mac}"]
        for bad in forged:
            response = as_alice.get(ORDERS, params={"limit": 1, "cursor": bad})
            assert response.status_code == 400, bad
            assert response.json()["errors"][0]["field"] == "cursor"
    with api.client() as staff:  # a cursor is its caller's own, even for staff
        assert staff.get(ORDERS, params={"cursor": cursor}).status_code == 400


@pytest.mark.parametrize(
    ("traceparent", "tracestate", "stored"),
    [
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "congo=t61rcWkgMzE",
            ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "congo=t61rcWkgMzE"),
        ),
        ("00-" + "0" * 32 + "-b7ad6b7169203331-01", "congo=x", (None, None)),
        ("not a traceparent\u00e9", "congo=x", (None, None)),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "x" * 600, ("ok", None)),
    ],
    ids=["valid", "zero-trace-id", "garbage", "tracestate-too-long"],
)
def test_trace_context_is_validated_before_it_is_stored(
    api: Pipeline,
    module_database_url: str,
    traceparent: str,
    tracestate: str,
    stored: tuple[str | None, str | None],
) -> None:
    headers = {"traceparent": traceparent.encode("utf-8"), "tracestate": tracestate}
    with api.client() as client:
        response = client.post(ORDERS, json=SEED_ORDER, headers=headers)  # type: ignore[arg-type]
    assert response.status_code == 201
    order_id = response.json()["order"]["id"]
    with psycopg.connect(module_database_url) as conn:
        row = conn.execute(
            "SELECT headers->>'traceparent', headers->>'tracestate' FROM outbox WHERE subject = %s",
            (order_id,),
        ).fetchone()
    assert row is not None
    expected_parent = traceparent if stored[0] == "ok" else stored[0]
    assert (row[0], row[1]) == (expected_parent, stored[1])


def test_starting_without_an_auth_setting_is_one_line(api: Pipeline) -> None:
    env = child_env({k: v for k, v in api.env.items() if not k.startswith("AUTH_")})
    env["HTTP_PORT"] = str(free_port())
    done = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "orders-api: configuration error: no way to check tokens: set AUTH_PUBLIC_KEY_FILE or "
        "AUTH_JWKS_URL (or AUTH_DISABLED=true, for experiments only)"
    ]


def test_auth_disabled_is_loud(
    module_database_url: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    disabled = {"AUTH_DISABLED": "true", "AUTH_PUBLIC_KEY_FILE": ""}
    with (
        api_alone(postgres, module_database_url, tmp_path, disabled) as running,
        httpx.Client(base_url=running.api_url) as anonymous,
    ):
        created = anonymous.post(ORDERS, json=SEED_ORDER)
        health = anonymous.get("/health/live")
        logged = [line["message"] for line in running.log_lines("api")]
    assert created.status_code == 201
    for response in (created, health):
        assert "authentication is disabled" in response.headers["warning"]
    assert any("authentication is disabled" in message for message in logged)
