"""The engine never lets a statement's values into an error's text (no I/O: not connected)."""

from __future__ import annotations

from sqlalchemy.exc import StatementError

from app.config import DatabaseSettings
from app.db.engine import create_engine


def test_statement_errors_name_the_statement_not_its_values() -> None:
    settings = DatabaseSettings(
        url="postgresql+psycopg://nobody@127.0.0.1:9/none",
        pool_size=1,
        connect_timeout=1,
        statement_timeout=1,
    )
    engine = create_engine(settings, application_name="orders-tests").sync_engine
    assert engine.hide_parameters
    error = StatementError(
        "boom", "INSERT INTO orders (email) VALUES (%(email)s)", {"email": "a@b.co"}, None,
        hide_parameters=engine.hide_parameters,
    )  # fmt: skip
    assert "a@b.co" not in str(error)
