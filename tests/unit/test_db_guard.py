"""The libpq parameters every PostgreSQL connection of ours is opened with."""

from __future__ import annotations

from app.config import load
from app.db.engine import connection_parameters


def test_every_connection_bounds_its_waits_within_give_up_after() -> None:
    database = load({"DB_GIVE_UP_AFTER": "15", "DB_STATEMENT_TIMEOUT": "9"}, env_file=None).database
    parameters = connection_parameters(database, "orders-relay")
    assert parameters["application_name"] == "orders-relay"
    assert parameters["keepalives"] == 1
    # An idle peer that vanished is found by keepalives before the deadline ends the wait.
    probing = (
        parameters["keepalives_idle"]
        + parameters["keepalives_interval"] * parameters["keepalives_count"]
    )
    assert probing <= 15
    assert parameters["tcp_user_timeout"] == 15_000
    assert parameters["options"].split() == [
        "-c",
        "statement_timeout=9000",
        "-c",
        "lock_timeout=5000",
        "-c",
        "idle_in_transaction_session_timeout=15000",
    ]
