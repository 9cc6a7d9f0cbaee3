"""Alembic environment: online migrations only, against the configured database."""

from __future__ import annotations

from sqlalchemy import create_engine, pool

from alembic import context
from app.config import load, sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = sqlalchemy_url(config.get_main_option("sqlalchemy.url") or load().database.url)
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run against a database")
run_migrations_online()
