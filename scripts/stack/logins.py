"""One PostgreSQL login per process, each a member of its process's role.

Migration 0002 creates the NOLOGIN roles and their grants; this makes the users
that log in with them (`orders_api_user` in role `orders_api`, and so on), with
generated passwords, for the local stack and the tests. Users belong to the
cluster: making them again only resets their passwords.
"""

from __future__ import annotations

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
