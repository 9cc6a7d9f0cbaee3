"""The HTTP layer's boundaries, read from the source: the use cases know no HTTP, the
HTTP layer speaks no SQL and opens no transaction, and no function grows past 50 lines."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from app.domain.principal import Scope
from app.http.security import requires

APP = Path(__file__).resolve().parents[2] / "app"
HTTP = sorted((APP / "http").rglob("*.py"))
SERVICES = sorted((APP / "services").rglob("*.py"))
MAX_FUNCTION_LINES = 50


def imports(path: Path) -> set[str]:
    """Every module `path` imports, and every `module.name` it imports from one."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def long_functions(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno} {node.name}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - min([node.lineno, *(d.lineno for d in node.decorator_list)])
        >= MAX_FUNCTION_LINES
    ]


@pytest.mark.parametrize("path", SERVICES, ids=lambda p: p.name)
def test_use_cases_know_no_http(path: Path) -> None:
    assert not [name for name in imports(path) if name.split(".")[:2] == ["app", "http"]]
    assert not [name for name in imports(path) if name.startswith("litestar")]


@pytest.mark.parametrize("path", HTTP, ids=lambda p: str(p.relative_to(APP)))
def test_the_http_layer_speaks_no_sql_and_opens_no_transaction(path: Path) -> None:
    found = imports(path)
    # Handlers are handed an engine (its type only) and pass it to a use case.
    allowed = {"sqlalchemy.ext.asyncio", "sqlalchemy.ext.asyncio.AsyncEngine"}
    assert not [n for n in found if n.startswith("sqlalchemy") and n not in allowed]
    assert "app.db.engine.transaction" not in found


@pytest.mark.parametrize("path", HTTP + SERVICES, ids=lambda p: str(p.relative_to(APP)))
def test_no_function_is_longer_than_50_lines(path: Path) -> None:
    assert long_functions(path) == []


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The helpers see what they look for (a check that cannot fail proves nothing)."""
    module = tmp_path / "module.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    module.write_text(
        "from app.http.wire import decode\nfrom sqlalchemy import text\n"
        f"@decorator\ndef long():\n{body}\n"
    )
    assert "app.http.wire.decode" in imports(module)
    assert "sqlalchemy.text" in imports(module)
    assert long_functions(module) == ["module.py:4 long"]


@pytest.mark.parametrize("scope", list(Scope))
def test_scope_guards_run_on_the_event_loop(scope: Scope) -> None:
    """Litestar runs a plain-function guard in a worker thread: ours are coroutines."""
    assert inspect.iscoroutinefunction(requires(scope))
