"""The OpenAPI document describes every endpoint, header, error and example, and its
examples are valid against its own schemas (no I/O: the app is built, not served)."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

from app import config
from app.http.app import create_app
from app.http.problems import KINDS
from scripts.stack.tokens import AUDIENCE, ISSUER, SigningKey

SETTINGS = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",  # never connected to
    "ORDER_MAX_ITEMS": "7",
    "HTTP_MAX_PAGE_SIZE": "30",
    "IDEMPOTENCY_TTL_HOURS": "48",
    "AUTH_ISSUER": ISSUER,
    "AUTH_AUDIENCE": AUDIENCE,
    "CURSOR_SECRET": "s" * 32,
}
ENDPOINTS = {
    ("post", "/api/v1/orders"),
    ("get", "/api/v1/orders"),
    ("get", "/api/v1/orders/{order_id}"),
    ("post", "/api/v1/orders/{order_id}/cancel"),
    ("get", "/api/v1/orders/{order_id}/history"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
}
# What each endpoint can answer besides success, as problem types.
AUTH = {"invalid-token", "insufficient-scope", "rate-limited"}
PROBLEMS = {
    ("post", "/api/v1/orders"): AUTH | {
        "malformed-json", "idempotency-key-in-flight", "payload-too-large", "forbidden",
        "unsupported-media-type", "validation-error", "idempotency-key-reused", "unavailable",
    },
    ("get", "/api/v1/orders"): AUTH | {"invalid-parameter", "forbidden", "unavailable"},
    ("get", "/api/v1/orders/{order_id}"): AUTH | {"order-not-found", "not-found", "unavailable"},
    ("post", "/api/v1/orders/{order_id}/cancel"): AUTH | {
        "malformed-json", "order-not-found", "not-found", "illegal-transition",
        "payload-too-large", "unsupported-media-type", "validation-error", "unavailable",
    },
    ("get", "/api/v1/orders/{order_id}/history"): AUTH | {
        "order-not-found", "not-found", "unavailable",
    },
    ("get", "/health/live"): set(),
    ("get", "/health/ready"): {"unavailable"},
}  # fmt: skip


# The scope each operation needs; public ones need none (and declare no security).
SCOPES = {
    ("post", "/api/v1/orders"): "orders:write",
    ("get", "/api/v1/orders"): "orders:read",
    ("get", "/api/v1/orders/{order_id}"): "orders:read",
    ("post", "/api/v1/orders/{order_id}/cancel"): "orders:write",
    ("get", "/api/v1/orders/{order_id}/history"): "orders:read",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    public = tmp_path_factory.mktemp("auth") / "public.pem"
    public.write_bytes(SigningKey.generate().public_pem())
    settings = {**SETTINGS, "AUTH_PUBLIC_KEY_FILE": str(public)}
    app = create_app(config.load(settings, env_file=None))
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def conforms(spec: dict[str, Any], schema: dict[str, Any], value: object) -> list[str]:
    """The errors of `value` against `schema`, whose $refs point into the document."""
    root = {**schema, "components": spec["components"]}
    validator = jsonschema_rs.Draft202012Validator(root)
    return [error.message for error in validator.iter_errors(value)]


def refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(refs(value) for value in node))
    return set()


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    """Struct schemas are msgspec's, components are named by Litestar: the names agree."""
    found = refs(spec)
    assert "#/components/schemas/Address" in found
    for ref in found:
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in spec["components"][section], ref


def test_every_endpoint_is_described(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    found = {(method, path) for method, path, _ in operations(spec)}
    assert found == ENDPOINTS
    for _, _, operation in operations(spec):
        assert operation["summary"]
        assert operation["operationId"]


@pytest.mark.parametrize(("method", "path"), sorted(ENDPOINTS))
def test_every_error_is_a_problem_with_an_example(
    spec: dict[str, Any], method: str, path: str
) -> None:
    responses = spec["paths"][path][method]["responses"]
    documented = set()
    for status, response in responses.items():
        if int(status) < 400:
            continue
        media = response["content"]["application/problem+json"]
        assert media["schema"] == {"$ref": "#/components/schemas/Problem"}
        for example in media["examples"].values():
            problem = example["value"]
            slug = problem["type"].removeprefix("urn:orders:problem:")
            assert KINDS[slug].status == problem["status"] == int(status)
            assert problem["title"] == KINDS[slug].title
            assert conforms(spec, media["schema"], problem) == []
            documented.add(slug)
    assert documented == PROBLEMS[(method, path)]


@pytest.mark.parametrize(("method", "path"), sorted(ENDPOINTS))
def test_every_response_names_its_headers(spec: dict[str, Any], method: str, path: str) -> None:
    headers = spec["components"]["headers"]
    assert headers["X-Request-ID"]["required"] is True
    assert headers["Retry-After"]["schema"]["type"] == "integer"
    for status, response in spec["paths"][path][method]["responses"].items():
        names = set(response["headers"])
        assert "X-Request-ID" in names
        assert ("Retry-After" in names) == (status in ("429", "503"))
        replay = (method, path, status) == ("post", "/api/v1/orders", "201")
        assert ("Idempotent-Replayed" in names) == replay
        for ref in response["headers"].values():
            assert ref["$ref"].removeprefix("#/components/headers/") in headers
    parameters = {p["name"]: p for p in spec["paths"][path][method].get("parameters", [])}
    assert parameters["X-Request-ID"]["in"] == "header"
    assert ("traceparent" in parameters) == (method == "post")


def test_idempotency_key_is_documented_with_its_rules(spec: dict[str, Any]) -> None:
    parameters = spec["paths"]["/api/v1/orders"]["post"]["parameters"]
    key = next(p for p in parameters if p["name"] == "Idempotency-Key")
    assert key["in"] == "header"
    assert key["required"] is False
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert key["schema"]["pattern"] == r"^[\x20-\x7E]+$"
    assert "remembered for 48 hours" in key["description"]  # IDEMPOTENCY_TTL_HOURS


def test_every_success_has_an_example_valid_against_its_schema(spec: dict[str, Any]) -> None:
    checked = 0
    for _, _, operation in operations(spec):
        for status, response in operation["responses"].items():
            if int(status) >= 400 or "examples" not in response["content"]["application/json"]:
                continue
            media = response["content"]["application/json"]
            for example in media["examples"].values():
                assert conforms(spec, media["schema"], example["value"]) == []
                checked += 1
    assert checked >= 5  # create, get, list, cancel, history


@pytest.mark.parametrize(
    ("path", "example"),
    [("/api/v1/orders", "seed order"), ("/api/v1/orders/{order_id}/cancel", "reason")],
)
def test_request_bodies_have_valid_examples(spec: dict[str, Any], path: str, example: str) -> None:
    body = spec["paths"][path]["post"]["requestBody"]
    media = body["content"]["application/json"]
    values = [found["value"] for found in media["examples"].values()]
    assert values
    for value in values:
        assert conforms(spec, media["schema"], value) == []
    assert body["required"] is (path == "/api/v1/orders")


def test_the_order_schema_says_what_the_decoder_enforces(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    new_order = schemas["OrderRequest"]
    assert new_order["additionalProperties"] is False
    assert schemas["NewItem"]["additionalProperties"] is False
    assert schemas["Address"]["additionalProperties"] is False
    assert new_order["properties"]["items"]["maxItems"] == 7  # ORDER_MAX_ITEMS
    assert "USD" in new_order["properties"]["currency"]["enum"]
    price = schemas["NewItem"]["properties"]["price"]
    assert (price["type"], price["minimum"], price["multipleOf"]) == ("number", 0, 0.01)
    assert schemas["Order"]["properties"]["total_amount"]["type"] == "number"
    assert new_order["properties"]["metadata"]["maxProperties"] == 50
    seed = spec["paths"]["/api/v1/orders"]["post"]["requestBody"]["content"]["application/json"]
    valid = next(iter(seed["examples"].values()))["value"]
    assert conforms(spec, {"$ref": "#/components/schemas/OrderRequest"}, valid) == []
    for wrong in (
        {**valid, "id": "865ca832-c5c6-44b0-b235-37273c65aa19"},  # server-owned
        {**valid, "items": [{**valid["items"][0], "price": "49.99"}]},  # money as a string
        {**valid, "metadata": {"nested": {"a": 1}}},
        {**valid, "currency": "XYZ"},
        {**valid, "metadata": {"k" * 65: 1}},  # a key's length (from the type's Meta)
        {**valid, "metadata": {str(n): n for n in range(51)}},
        {**valid, "shipping_address": {**valid["shipping_address"], "floor": 3}},
        {**valid, "items": [valid["items"][0]] * 8},  # ORDER_MAX_ITEMS
    ):
        assert conforms(spec, {"$ref": "#/components/schemas/OrderRequest"}, wrong) != []
    for when in ("2025-09-22T13:09:07Z", "2025-09-22T13:09:07.5+02:00"):
        assert conforms(spec, schemas["Transition"]["properties"]["changed_at"], when) == []
    assert schemas["Order"]["properties"]["created_at"]["format"] == "date-time"


def test_the_cancel_reason_is_bounded(spec: dict[str, Any]) -> None:
    cancel = {"$ref": "#/components/schemas/CancelRequest"}
    assert conforms(spec, cancel, {"reason": "r" * 500}) == []
    assert conforms(spec, cancel, {"reason": None}) == []
    for wrong in ({"reason": "r" * 501}, {"reason": ""}, {"reason": "a\u0000b"}, {"why": "x"}):
        assert conforms(spec, cancel, wrong) != [], wrong


def test_page_size_limit_is_the_configured_one(spec: dict[str, Any]) -> None:
    parameters = spec["paths"]["/api/v1/orders"]["get"]["parameters"]
    limit = next(p for p in parameters if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 30)
    created = next(p for p in parameters if p["name"] == "created_from")
    assert created["schema"] == {"type": "string", "format": "date-time"}


def test_bearer_scheme_and_each_operations_scope_are_declared(spec: dict[str, Any]) -> None:
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for method, path, operation in operations(spec):
        scope = SCOPES.get((method, path))
        assert operation.get("security") == ([{"bearer": [scope]}] if scope else None), path
        if scope:
            assert "401" in operation["responses"] and "403" in operation["responses"], path
