"""One PostgreSQL login per process, each a member of its process's role.

Migration 0002 creates the NOLOGIN roles and their grants; this makes the users
that log in with them (`orders_api_user` in role `orders_api`, and so on), with
generated passwords, for the local stack and the tests. Users belong to the
cluster: making them again only resets their passwords.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROLES = {"api": "orders_api", "relay": "orders_relay", "consumer": "orders_consumer"}


def user_of(process: str) -> str:
    return f"{ROLES[process]}_user"


def create_logins(admin_url: str, passwords: Mapping[str, str]) -> None:
    """Create (or re-password) each process's user and put it in its role.

    `admin_url` must be able to create roles; the roles must exist (migrated).
    """
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for process, role in ROLES.items():
            user = sql.Identifier(user_of(process))
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user_of(process),))
            verb = "ALTER" if exists.fetchone() else "CREATE"
            conn.execute(
                sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(
                    sql.SQL(verb), user, sql.Literal(passwords[process])
                )
            )
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), user))


def login_url(url: str, process: str, password: str) -> str:
    """`url` (any database on the server) with the process's user and password instead."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    userinfo = f"{quote(user_of(process), safe='')}:{quote(password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


# The variables that hold each process's password where the operator sets them (compose.yaml).
PASSWORD_VARIABLES = {
    "api": "DB_API_PASSWORD",
    "relay": "DB_RELAY_PASSWORD",
    "consumer": "DB_CONSUMER_PASSWORD",
}


def passwords_from(environ: Mapping[str, str]) -> dict[str, str]:
    """Each process's password from `environ`; an unset or empty one is an error
    (a login without a password would be refused by the server anyway, later)."""
    missing = [name for name in PASSWORD_VARIABLES.values() if not environ.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)}: each process's database password")
    return {process: environ[name] for process, name in PASSWORD_VARIABLES.items()}


def main() -> None:
    """The container's `init-db` job: migrate, then make the per-process logins.

    Runs as the migration owner (DB_USER/DB_PASSWORD): it owns the schema and may
    create roles. Idempotent, so every `make up` runs it again (a changed password
    in .env takes effect then).
    """
    import subprocess  # noqa: PLC0415 - only the job needs these
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    from app import config  # noqa: PLC0415
    from app.db.engine import libpq_url  # noqa: PLC0415 - the settings' URL is SQLAlchemy's

    try:
        wanted = passwords_from(os.environ)
        url = libpq_url(config.load(env_file=None).database.url)
    except (ValueError, config.ConfigError) as exc:
        sys.exit(f"init-db: {exc}")
    root = Path(__file__).resolve().parents[2]
    alembic = [sys.executable, "-m", "alembic", "-c", str(root / "alembic.ini")]
    subprocess.run([*alembic, "upgrade", "head"], check=True)
    create_logins(url, wanted)
    users = ", ".join(user_of(process) for process in ROLES)
    print(f"init-db: migrated; logins {users} ready", flush=True)


if __name__ == "__main__":
    main()
