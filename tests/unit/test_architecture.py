"""The layers of docs/architecture.md, checked: who may import whom, and how long a function
may grow. Read from the source with `ast` (nothing is imported), so a rule broken anywhere in
a module, even inside a function, fails here."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 50  # lines, from `def` to the function's last line

# (package, what it must never import, why)
RULES = [
    ("relay", "app.http", "the relay uses app's domain, db, config and events, not its HTTP layer"),
    ("consumer", "app.http", "the consumer likewise"),
    ("app.events", "app.db", "a wire type knows no table"),
    ("app.domain", "app.db", "the domain is pure Python"),
    ("app.domain", "app.events", "events on the wire are built from the domain, not under it"),
    ("app.domain", "sqlalchemy", "the domain imports no framework"),
    ("app.domain", "psycopg", "the domain imports no framework"),
    ("app.domain", "litestar", "the domain imports no framework"),
    ("app.domain", "confluent_kafka", "the domain imports no framework"),
    ("app.services", "app.http", "use cases know no HTTP: the HTTP layer renders their outcomes"),
    ("app.services", "litestar", "use cases know no HTTP"),
    ("app", "relay", "nothing in app depends on a process built on it"),
    ("app", "consumer", "nothing in app depends on a process built on it"),
    ("app", "tests", "production code never reaches into the tests"),
    ("relay", "tests", "production code never reaches into the tests"),
    ("consumer", "tests", "production code never reaches into the tests"),
]
# Test doubles live in <process>/testing.py; no production module may import them.
DOUBLES = ("relay.testing", "consumer.testing")
PRODUCTION = ("app", "relay", "consumer")

# The packages whose functions are held to LIMIT lines.
SHORT_FUNCTIONS = ("app", "relay", "consumer", "bench", "scripts")


def modules(package: str) -> Iterator[tuple[str, Path]]:
    """(dotted module name, path) of every module under `package`."""
    base = ROOT / package.replace(".", "/")
    for path in sorted(base.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported(path: Path) -> set[str]:
    """Every module name an import statement in `path` names (absolute imports)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def reaches(name: str, forbidden: str) -> bool:
    return name == forbidden or name.startswith(forbidden + ".")


@pytest.mark.parametrize(("package", "forbidden", "why"), RULES, ids=lambda v: str(v)[:20])
def test_a_layer_never_imports_what_it_must_not(package: str, forbidden: str, why: str) -> None:
    found = [module for module, _ in modules(package)]
    assert found, f"no modules under {package}: the rule checks nothing"
    broken = [
        f"{module} imports {name}"
        for module, path in modules(package)
        for name in sorted(imported(path))
        if reaches(name, forbidden)
    ]
    assert broken == [], why


def test_production_code_never_imports_the_test_doubles() -> None:
    broken = [
        f"{module} imports {name}"
        for package in PRODUCTION
        for module, path in modules(package)
        if module not in DOUBLES
        for name in sorted(imported(path))
        if any(reaches(name, double) for double in DOUBLES)
    ]
    assert broken == []


def test_the_import_check_sees_a_broken_rule(tmp_path: Path) -> None:
    """The checker itself: an import inside a function, and a `from` import, both count."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from app.db import outbox\n    import app.http.app\n")
    names = imported(module)
    assert any(reaches(name, "app.db") for name in names)
    assert any(reaches(name, "app.http") for name in names)
    assert not reaches("app.dbx", "app.db")


def long_functions(path: Path, root: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > LIMIT:
                where = path.relative_to(root)
                found.append(f"{where}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_is_longer_than_50_lines() -> None:
    checked, long = 0, []
    for package in SHORT_FUNCTIONS:
        for path in sorted((ROOT / package).rglob("*.py")):
            checked += 1
            long += long_functions(path)
    assert checked > 50  # the walk found the tree
    assert long == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def short():\n    pass\n\n\ndef f():\n" + "    x = 1\n" * LIMIT)
    assert long_functions(module, tmp_path) == ["m.py:5 f (51 lines)"]
