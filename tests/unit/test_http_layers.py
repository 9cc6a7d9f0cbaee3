"""The HTTP layer's own boundaries, beyond the import rules of test_architecture.py: it
speaks no SQL and opens no transaction, and its guards run on the event loop."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute

from app.domain.principal import Scope
from app.http.app import create_app
from app.http.security import requires
from scripts.stack.tokens import SigningKey
from tests.support.offline import offline_settings
from tests.unit.test_architecture import ROOT, imported

HTTP = sorted((ROOT / "app" / "http").rglob("*.py"))


@pytest.mark.parametrize("path", HTTP, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_http_layer_speaks_no_sql_and_opens_no_transaction(path: Path) -> None:
    found = imported(path)
    # Handlers are handed an engine (its type only) and pass it to a use case.
    allowed = {"sqlalchemy.ext.asyncio", "sqlalchemy.ext.asyncio.AsyncEngine"}
    assert not [n for n in found if n.startswith("sqlalchemy") and n not in allowed]
    assert "app.db.engine.transaction" not in found


def test_the_sql_check_can_fail(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text("from sqlalchemy import text\nfrom app.db.engine import transaction\n")
    assert {"sqlalchemy.text", "app.db.engine.transaction"} <= imported(module)


@pytest.mark.parametrize("scope", list(Scope))
def test_scope_guards_run_on_the_event_loop(scope: Scope) -> None:
    """Litestar runs a plain-function guard in a worker thread: ours are coroutines."""
    assert inspect.iscoroutinefunction(requires(scope))


def dependency_batches(app: Litestar) -> dict[tuple[str, str], list[set[str]]]:
    """Per (method, path): the batches Litestar resolves the handler's dependencies in."""
    found = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, (_, kwargs_model) in route.route_handler_map.items():
                batches = kwargs_model.dependency_batches
                found[method, route.path] = [{d.key for d in batch} for batch in batches]
    return found


def test_write_handlers_resolve_their_dependencies_one_at_a_time(tmp_path: Path) -> None:
    """A batch of several dependencies is resolved in a task group, a task each, on every
    request; a batch of one directly. The writes take one dependency (app.http.parameters)."""
    batches = dependency_batches(create_app(offline_settings(SigningKey.generate(), tmp_path)))
    writes = {key: found for key, found in batches.items() if key[0] == "POST"}
    assert set(writes) == {
        ("POST", "/api/v1/orders"),
        ("POST", "/api/v1/orders/{order_id:uuid}/cancel"),
    }
    assert writes == {
        ("POST", "/api/v1/orders"): [{"principal"}, {"keyed_write"}],
        ("POST", "/api/v1/orders/{order_id:uuid}/cancel"): [{"principal"}, {"write"}],
    }


def test_the_batch_check_can_fail(tmp_path: Path) -> None:
    """The read handlers still ask for the principal and the engine side by side."""
    batches = dependency_batches(create_app(offline_settings(SigningKey.generate(), tmp_path)))
    assert batches["GET", "/api/v1/orders/{order_id:uuid}"] == [{"principal", "engine"}]
