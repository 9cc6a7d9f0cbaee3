"""The HTTP layer's own boundaries, beyond the import rules of test_architecture.py: it
speaks no SQL and opens no transaction, and its guards run on the event loop."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from app.domain.principal import Scope
from app.http.security import requires
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
