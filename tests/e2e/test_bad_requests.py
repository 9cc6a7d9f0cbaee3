"""Bad requests against the real API over real HTTP: each gets its exact status, an RFC 9457
problem naming what is wrong, and writes nothing, in any table.

Requests are sent as raw bytes (httpx `content=`), so a malformed body, an odd
header or a huge body is exactly what the row says. A few requests that look
hostile but are valid (SQL in a product name, JSON in a string) are accepted, and
their values come back byte for byte.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.pipeline import SEED_ORDER, SIGNING_KEY, Pipeline
from tests.support.rows import row_counts
from tests.support.tokens import READ_ONLY, SEED_CUSTOMER, hostile_tokens

ORDERS = "/api/v1/orders"
ORDER = "/api/v1/orders/{order_id}"
CANCEL = "/api/v1/orders/{order_id}/cancel"
HISTORY = "/api/v1/orders/{order_id}/history"
KNOWN = "00000000-0000-4000-8000-000000000001"  # replaced by a real order's id at run time
JSON = (("Content-Type", "application/json"),)
MAX_BODY_BYTES = 64 * 1024  # HTTP_MAX_BODY_BYTES default
MAX_ITEMS = 100  # ORDER_MAX_ITEMS default


def seed(**changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED_ORDER)
    body.update(changes)
    return body


def body(**changes: Any) -> bytes:
    return json.dumps(seed(**changes)).encode()


def item(**changes: Any) -> bytes:
    order = seed()
    order["items"][0].update(changes)
    return json.dumps(order).encode()


def address(**changes: Any) -> bytes:
    order = seed()
    order["shipping_address"].update(changes)
    return json.dumps(order).encode()


def metadata(value: object) -> bytes:
    return body(metadata=value)


def without(*names: str) -> bytes:
    order = seed()
    for name in names:
        del order[name]
    return json.dumps(order).encode()


def swap(old: bytes, new: bytes) -> bytes:
    """The seed body with one exact piece of its JSON text replaced (for literals json.dumps
    cannot write: 1e400, NaN, duplicated names)."""
    text = json.dumps(SEED_ORDER).encode()
    assert text.count(old) == 1, old
    return text.replace(old, new)


@dataclass(frozen=True)
class Bad:
    name: str
    method: str
    path: str
    content: bytes | None
    status: int
    problem: str  # the slug of urn:orders:problem:<slug>
    field: str | None = None  # the first error's field, where the problem lists fields
    headers: tuple[tuple[str, str | bytes], ...] = JSON
    operation: str | None = None  # the OpenAPI path that documents this response

    def __str__(self) -> str:
        return self.name


def create(
    name: str,
    content: bytes | None,
    status: int,
    problem: str,
    field: str | None = None,
    headers: tuple[tuple[str, str | bytes], ...] = JSON,
) -> Bad:
    return Bad(name, "POST", ORDERS, content, status, problem, field, headers, ORDERS)


def invalid(name: str, content: bytes, field: str) -> Bad:
    return create(name, content, 422, "validation-error", field)


def malformed(name: str, content: bytes) -> Bad:
    return create(name, content, 400, "malformed-json")


def query(name: str, params: str, field: str) -> Bad:
    return Bad(name, "GET", f"{ORDERS}?{params}", None, 400, "invalid-parameter", field, (), ORDERS)


def cancel(
    name: str,
    content: bytes,
    status: int,
    problem: str,
    field: str | None = None,
    headers: tuple[tuple[str, str | bytes], ...] = JSON,
) -> Bad:
    return Bad(
        name,
        "POST",
        CANCEL.format(order_id=KNOWN),
        content,
        status,
        problem,
        field,
        headers,
        CANCEL,
    )


LONG_EMAIL = "a" * 243 + "@example.com"  # 255 characters
HUGE = json.dumps(seed(metadata={"note": "x" * MAX_BODY_BYTES})).encode()

BAD_REQUESTS = [
    # Not JSON at all: 400.
    malformed("truncated", body()[:-7]),
    malformed("trailing-garbage", body() + b"}"),
    malformed("trailing-comma", swap(b'"quantity": 3', b'"quantity": 3,')),
    malformed("not-utf8", swap(b"Test Product", b"Test \xff Product")),
    malformed("empty-body", b""),
    malformed("whitespace-only", b" \r\n\t "),
    malformed("utf8-bom", b"\xef\xbb\xbf" + body()),
    malformed("nan-price", swap(b"49.99", b"NaN")),
    malformed("infinity-price", swap(b"49.99", b"Infinity")),
    malformed("single-quotes", b"{'customer_id': 1}"),
    malformed("lone-surrogate-in-name", swap(b"Test Product", b"Test \\ud800 Product")),
    # JSON, but not an order: 422 naming the field.
    invalid("null", b"null", "body"),
    invalid("array", b"[]", "body"),
    invalid("string", b'"an order"', "body"),
    invalid("price-as-string", item(price="49.99"), "items[0].price"),
    invalid("price-as-bool", item(price=True), "items[0].price"),
    invalid("quantity-as-string", item(quantity="3"), "items[0].quantity"),
    invalid("quantity-fraction", item(quantity=1.5), "items[0].quantity"),
    invalid("quantity-written-as-float", item(quantity=3.0), "items[0].quantity"),
    invalid("customer-id-number", body(customer_id=5), "customer_id"),
    invalid("items-object", body(items={}), "items"),
    invalid("items-empty", body(items=[]), "items"),
    invalid("metadata-array", metadata([]), "metadata"),
    invalid("email-null", body(email=None), "email"),
    invalid("address-string", body(shipping_address="Minsk"), "shipping_address"),
    invalid("customer-id-null", body(customer_id=None), "customer_id"),
    invalid("customer-id-missing", without("customer_id"), "customer_id"),
    invalid("items-missing", without("items"), "items"),
    # Boundaries: 0 and 99999999.99 are fine (see the acceptance test), these are not.
    invalid("price-negative-cent", swap(b"49.99", b"-0.01"), "items[0].price"),
    invalid("price-three-decimals", swap(b"49.99", b"0.001"), "items[0].price"),
    invalid("price-hundred-million", swap(b"49.99", b"100000000"), "items[0].price"),
    invalid("price-1e400", swap(b"49.99", b"1e400"), "items[0].price"),
    invalid("price-1e-400", swap(b"49.99", b"1e-400"), "items[0].price"),
    invalid("quantity-zero", item(quantity=0), "items[0].quantity"),
    invalid("quantity-10001", item(quantity=10_001), "items[0].quantity"),
    invalid("quantity-2**63", item(quantity=2**63), "items[0].quantity"),
    invalid("too-many-items", body(items=SEED_ORDER["items"] * (MAX_ITEMS + 1)), "items"),
    # Currency, email, address.
    invalid("currency-lowercase", body(currency="usd"), "currency"),
    invalid("currency-unknown", body(currency="XYZ"), "currency"),
    invalid("currency-four-letters", body(currency="USDT"), "currency"),
    invalid("currency-trailing-newline", body(currency="USD\n"), "currency"),
    invalid("email-without-at", body(email="customer.example.com"), "email"),
    invalid("email-unicode-local-part", body(email="josé@example.com"), "email"),
    invalid("email-255-characters", body(email=LONG_EMAIL), "email"),
    invalid("email-trailing-space", body(email="customer@example.com "), "email"),
    invalid("email-trailing-newline", body(email="customer@example.com\n"), "email"),
    invalid("street-too-long", address(street="x" * 201), "shipping_address.street"),
    invalid("zip-too-long", address(zip_code="1" * 21), "shipping_address.zip_code"),
    invalid("country-name", address(country="Belarus"), "shipping_address.country"),
    invalid("country-trailing-newline", address(country="BY\n"), "shipping_address.country"),
    invalid("address-unknown-field", address(apartment="5"), "shipping_address.apartment"),
    # Metadata: a flat object of bounded size.
    invalid("metadata-nested", metadata({"a": {"b": 1}}), "metadata"),
    invalid("metadata-list-value", metadata({"tags": ["a"]}), "metadata"),
    invalid("metadata-51-keys", metadata({f"k{i}": i for i in range(51)}), "metadata"),
    invalid("metadata-key-65", metadata({"k" * 65: 1}), "metadata"),
    invalid("metadata-key-empty", metadata({"": 1}), "metadata"),
    invalid("metadata-value-501", metadata({"k": "v" * 501}), "metadata"),
    invalid("metadata-value-1e400", swap(b'"web"', b"1e400"), "metadata"),
    # Fields the server owns are not fields of a new order.
    invalid("server-owned-id", body(id=str(uuid.uuid4())), "id"),
    invalid("server-owned-status", body(status="confirmed"), "status"),
    invalid("server-owned-total", body(total_amount=0.01), "total_amount"),
    invalid("server-owned-created-at", body(created_at="2020-01-01T00:00:00Z"), "created_at"),
    invalid("server-owned-version", body(version=7), "version"),
    invalid("unknown-item-field", item(discount=5), "items[0].discount"),
    invalid(
        "duplicated-name",
        swap(b'"currency": "USD"', b'"currency": "USD", "currency": "EUR"'),
        "currency",
    ),
    # NUL cannot be stored by PostgreSQL text or jsonb: refused, not a 500.
    invalid("nul-in-name", item(name="Test\u0000Product"), "items[0].name"),
    invalid("nul-in-street", address(street="Main\u0000St"), "shipping_address.street"),
    invalid("nul-in-metadata-value", metadata({"source": "w\u0000b"}), "metadata"),
    invalid("nul-in-metadata-key", metadata({"so\u0000urce": "web"}), "metadata"),
    # Injection where it is not a valid value anyway.
    invalid("sql-in-customer-id", body(customer_id="1; DROP TABLE orders"), "customer_id"),
    invalid("sql-in-email", body(email="x@example.com'; DROP TABLE orders; --"), "email"),
    invalid("sql-in-currency", body(currency="USD'--"), "currency"),
    invalid(
        "json-in-product-id",
        item(product_id='456e7890", "admin": true, "x": "'),
        "items[0].product_id",
    ),
    # Size, media type and headers.
    create("body-over-64kib", HUGE, 413, "payload-too-large"),
    create(
        "text-plain",
        body(),
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "text/plain"),),
    ),
    create(
        "curl-d-form-urlencoded",
        body(),
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "application/x-www-form-urlencoded"),),
    ),
    create("no-content-type", body(), 415, "unsupported-media-type", headers=()),
    create(
        "two-content-types",
        body(),
        415,
        "unsupported-media-type",
        headers=(*JSON, ("Content-Type", "text/plain")),
    ),
    create(
        "idempotency-key-twice",
        body(),
        422,
        "validation-error",
        "Idempotency-Key",
        headers=(*JSON, ("Idempotency-Key", "a"), ("Idempotency-Key", "b")),
    ),
    create(
        "idempotency-key-256",
        body(),
        422,
        "validation-error",
        "Idempotency-Key",
        headers=(*JSON, ("Idempotency-Key", "k" * 256)),
    ),
    create(
        "idempotency-key-non-ascii",
        body(),
        422,
        "validation-error",
        "Idempotency-Key",
        headers=(*JSON, ("Idempotency-Key", "ключ".encode())),
    ),
    create(
        "idempotency-key-empty",
        body(),
        422,
        "validation-error",
        "Idempotency-Key",
        headers=(*JSON, ("Idempotency-Key", "")),
    ),
    # Paths and query parameters.
    Bad(
        "order-id-not-uuid",
        "GET",
        f"{ORDERS}/not-a-uuid",
        None,
        404,
        "not-found",
        headers=(),
        operation=ORDER,
    ),
    Bad(
        "history-id-sql",
        "GET",
        f"{ORDERS}/1;DROP-TABLE-orders/history",
        None,
        404,
        "not-found",
        headers=(),
        operation=HISTORY,
    ),
    Bad(
        "cancel-id-not-uuid",
        "POST",
        f"{ORDERS}/not-a-uuid/cancel",
        None,
        404,
        "not-found",
        headers=(),
        operation=CANCEL,
    ),
    query("limit-zero", "limit=0", "limit"),
    query("limit-over-max", "limit=101", "limit"),
    query("limit-not-a-number", "limit=abc", "limit"),
    query("limit-huge", "limit=99999999999999999999999", "limit"),
    query("status-unknown", "status=unknown", "status"),
    query("status-null", "status=null", "status"),
    query("status-uppercase", "status=PENDING", "status"),
    query("status-twice", "status=pending&status=cancelled", "status"),
    query("limit-twice", "limit=1&limit=2", "limit"),
    query("customer-id-query-null", "customer_id=null", "customer_id"),
    query("created-from-word", "created_from=yesterday", "created_from"),
    query("created-from-without-offset", "created_from=2026-01-01T00:00:00", "created_from"),
    query("created-from-epoch", "created_from=1700000000", "created_from"),
    query("created-from-date-only", "created_from=2026-01-01", "created_from"),
    query(
        "created-to-before-from",
        "created_from=2026-02-01T00:00:00Z&created_to=2026-01-01T00:00:00Z",
        "created_to",
    ),
    query("cursor-garbage", "cursor=garbage", "cursor"),
    query("cursor-too-long", "cursor=" + "a" * 201, "cursor"),
    query("customer-id-sql", "customer_id=1%3B%20DROP%20TABLE%20orders", "customer_id"),
    Bad("unknown-route", "GET", "/api/v1/nope", None, 404, "not-found", headers=()),
    Bad("delete-collection", "DELETE", ORDERS, None, 405, "method-not-allowed", headers=()),
    Bad("put-order", "PUT", ORDER.format(order_id=KNOWN), body(), 405, "method-not-allowed"),
    # Nesting is bounded before any parser recurses: 400, never a 500 (or a stack overflow).
    malformed("nested-10000-deep", b"[" * 10_000 + b"]" * 10_000),
    malformed("nested-objects-10000-deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
    create("nested-100000-deep", b"[" * 100_000 + b"]" * 100_000, 413, "payload-too-large"),
    cancel("cancel-nested-10000-deep", b"[" * 10_000 + b"]" * 10_000, 400, "malformed-json"),
    # Credentials: anything but a good token of ours is 401, before the body is looked at.
    *(
        create(f"token-{name}", body(), 401, "invalid-token", headers=(*JSON, auth))
        for name, auth in hostile_tokens(SIGNING_KEY).items()
    ),
    create(
        "token-without-write-scope",
        body(),
        403,
        "insufficient-scope",
        headers=(*JSON, ("Authorization", f"Bearer {SIGNING_KEY.token(SEED_CUSTOMER, READ_ONLY)}")),
    ),
    # Cancel's optional body is JSON too.
    cancel("cancel-not-json", b"{", 400, "malformed-json"),
    cancel("cancel-null", b"null", 422, "validation-error", "body"),
    cancel(
        "cancel-unknown-field",
        b'{"reason": "x", "refund": true}',
        422,
        "validation-error",
        "refund",
    ),
    cancel("cancel-empty-reason", b'{"reason": ""}', 422, "validation-error", "reason"),
    cancel(
        "cancel-reason-501",
        json.dumps({"reason": "r" * 501}).encode(),
        422,
        "validation-error",
        "reason",
    ),
    cancel("cancel-nul-in-reason", b'{"reason": "a\\u0000b"}', 422, "validation-error", "reason"),
    cancel(
        "cancel-text-plain",
        b'{"reason": "x"}',
        415,
        "unsupported-media-type",
        headers=(("Content-Type", "text/plain"),),
    ),
]


@pytest.fixture(scope="module")
def client(api: Pipeline) -> Iterator[httpx.Client]:
    with api.client() as found:
        yield found


@pytest.fixture(scope="module")
def known_order(client: httpx.Client) -> str:
    """A pending order: the cancels below would change it if they got through."""
    response = client.post(ORDERS, json=SEED_ORDER)
    assert response.status_code == 201
    return str(response.json()["order"]["id"])


@pytest.fixture(scope="module")
def spec(client: httpx.Client) -> dict[str, Any]:
    found: dict[str, Any] = client.get("/schema/openapi.json").json()
    return found


def test_the_table_is_large_and_its_names_unique() -> None:
    names = [bad.name for bad in BAD_REQUESTS]
    assert len(names) >= 45
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("bad", BAD_REQUESTS, ids=str)
def test_bad_request_is_refused_with_a_problem_and_writes_nothing(
    bad: Bad,
    client: httpx.Client,
    known_order: str,
    module_database_url: str,
    spec: dict[str, Any],
) -> None:
    path = bad.path.replace(KNOWN, known_order)
    before = row_counts(module_database_url)
    response = client.request(bad.method, path, content=bad.content, headers=list(bad.headers))
    after = row_counts(module_database_url)

    assert response.status_code == bad.status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == f"urn:orders:problem:{bad.problem}"
    assert problem["status"] == bad.status
    assert isinstance(problem["title"], str) and problem["title"]
    assert isinstance(problem["detail"], str) and problem["detail"]
    assert problem["instance"] == path.split("?", 1)[0]
    assert response.headers["x-request-id"]
    assert problem["request_id"] == response.headers["x-request-id"]
    if bad.field is not None:
        assert problem["errors"][0]["field"] == bad.field, problem["errors"]
        assert all(error["message"] for error in problem["errors"])
    assert after == before
    if bad.operation is not None:  # and the OpenAPI document says this can happen, and how
        documented = spec["paths"][bad.operation][bad.method.lower()]["responses"]
        media = documented[str(bad.status)]["content"]["application/problem+json"]
        examples = [example["value"]["type"] for example in media["examples"].values()]
        assert problem["type"] in examples


def test_405_says_which_methods_the_path_has(client: httpx.Client) -> None:
    response = client.delete(ORDERS)
    options = client.options(ORDERS)
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}
    assert set(options.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}


HOSTILE_BUT_VALID = [
    pytest.param(("items", 0, "name"), "'; DROP TABLE orders; --", id="sql-in-product-name"),
    pytest.param(("items", 0, "name"), 'Robert"); DELETE FROM order_items; --', id="sql-quote"),
    pytest.param(("items", 0, "name"), '", "price": 0, "x": "', id="json-in-product-name"),
    pytest.param(
        ("items", 0, "name"), "T\u00e9st \u202eRTL\u202c zero\u200bwidth \U0001f6d2", id="unicode"
    ),
    pytest.param(("items", 0, "name"), "<script>alert(1)</script>", id="html-in-product-name"),
    pytest.param(("email",), "o'brien+orders@example.com", id="apostrophe-in-email"),
    pytest.param(
        ("metadata",),
        {"note": "1; DROP TABLE orders", "$where": "1 == 1"},
        id="sql-and-nosql-in-metadata",
    ),
    pytest.param(("shipping_address", "street"), "Main St'; --", id="sql-in-street"),
    pytest.param(("items", 0, "price"), 0, id="price-zero"),
    pytest.param(("items", 0, "price"), 99999999.99, id="price-max"),
    pytest.param(("items", 0, "quantity"), 10_000, id="quantity-max"),
    pytest.param(("items",), SEED_ORDER["items"] * MAX_ITEMS, id="max-items"),
]


@pytest.mark.parametrize(("where", "value"), HOSTILE_BUT_VALID)
def test_hostile_looking_but_valid_values_are_stored_exactly(
    where: tuple[str | int, ...], value: object, client: httpx.Client, module_database_url: str
) -> None:
    order = seed(customer_id=str(uuid.uuid4()))
    target: Any = order
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    before = row_counts(module_database_url)
    created = client.post(ORDERS, content=json.dumps(order).encode(), headers=dict(JSON))
    assert created.status_code == 201, created.text
    stored = client.get(f"{ORDERS}/{created.json()['order']['id']}").json()["order"]
    found: Any = stored
    for step in where:
        found = found[step]
    assert found == value
    after = row_counts(module_database_url)  # every table is still there
    assert after["orders"] == before["orders"] + 1
    assert after["order_items"] == before["order_items"] + len(order["items"])
