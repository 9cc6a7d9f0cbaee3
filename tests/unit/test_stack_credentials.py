"""The local stack's generated credentials: private files, URLs that survive any password."""

from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from scripts.stack import credentials, logins, principals


def test_passwords_are_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    made = credentials.load_or_make(path, ["a", "b"])
    assert credentials.load_or_make(path, ["a", "b"]) == made
    assert made["a"] != made["b"] and len(made["a"]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_changed_set_of_names_makes_new_passwords(tmp_path: Path) -> None:
    path = tmp_path / "credentials.json"
    first = credentials.load_or_make(path, ["a"])
    assert set(credentials.load_or_make(path, ["a", "b"])) == {"a", "b"}
    assert credentials.load_or_make(path, ["a", "b"])["a"] != first["a"]


def test_a_login_url_carries_any_password_intact() -> None:
    hostile = "p@ss:w/rd?#%&é '\""
    url = logins.login_url(
        "postgresql://postgres:x@127.0.0.1:5432/orders?sslmode=disable", "relay", hostile
    )
    parts = urlsplit(url)
    assert (parts.username, unquote(parts.password or "")) == ("orders_relay_user", hostile)
    assert (parts.hostname, parts.port, parts.path, parts.query) == (
        "127.0.0.1",
        5432,
        "/orders",
        "sslmode=disable",
    )


def test_properties_files_are_private_and_kcat_readable(tmp_path: Path) -> None:
    found = {name: f"pw-{name}" for name in principals.PRINCIPALS}
    paths = principals.write_properties(tmp_path, "127.0.0.1:9092", found)
    assert {p.name for p in paths} == {f"{name}.properties" for name in principals.PRINCIPALS}
    fulfillment = dict(
        line.split("=", 1) for line in (tmp_path / "fulfillment.properties").read_text().split()
    )
    assert fulfillment == {
        "bootstrap.servers": "127.0.0.1:9092",
        "security.protocol": "sasl_plaintext",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "fulfillment",
        "sasl.password": "pw-fulfillment",
    }
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in paths)


def test_the_init_db_job_takes_every_process_password_or_refuses() -> None:
    given = {
        "DB_API_PASSWORD": "a'pi\"; DROP ROLE orders_api; --",
        "DB_RELAY_PASSWORD": "r",
        "DB_CONSUMER_PASSWORD": "c",
        "DB_PASSWORD": "owner",
    }
    assert logins.passwords_from(given) == {
        "api": "a'pi\"; DROP ROLE orders_api; --",
        "relay": "r",
        "consumer": "c",
    }
    for missing in ("DB_RELAY_PASSWORD", "DB_CONSUMER_PASSWORD"):
        for value in (None, ""):
            environ = {k: v for k, v in given.items() if k != missing}
            if value is not None:
                environ[missing] = value
            with pytest.raises(ValueError, match=f"set {missing}"):
                logins.passwords_from(environ)
