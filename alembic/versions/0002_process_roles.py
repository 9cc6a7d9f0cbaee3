"""Process roles: what the api, the relay and the consumer may each do, and no more.

Three NOLOGIN roles, one per process; each process logs in as a user of its
own that is a member of its role (scripts/stack/logins.py makes them locally;
in production the operator does, see README "Security"). Only the migration
owner (whoever runs `alembic upgrade`) owns, and so can change, the schema.

- orders_api: places, reads and cancels orders; writes events to the outbox
  (INSERT only: it cannot mark, delete or prune outbox rows); keeps the
  idempotency keys.
- orders_relay: reads and marks the outbox, prunes it through
  `outbox_prune` (a SECURITY DEFINER function: it deletes old published rows
  and nothing else), reads the backlog view. It cannot read `orders`.
- orders_consumer: reads an order and changes its status, records the history
  and the processed events, writes events to the outbox.

Roles belong to the cluster, not to one database (tests copy a migrated
template for each test), so they are created only when missing, and the
downgrade drops them only where no other database still grants them anything.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ROLES = ("orders_api", "orders_relay", "orders_consumer")

# What each role is granted, statement by statement. A table not named for a
# role is out of its reach (tables grant nothing to PUBLIC).
GRANTS = {
    "orders_api": [
        "SELECT, INSERT ON orders",
        # status and version: cancel; total_amount: the items trigger, run as the writer.
        "UPDATE (status, version, total_amount) ON orders",
        "SELECT, INSERT ON order_items",
        "SELECT, INSERT ON order_status_history",
        "INSERT ON outbox",
        "USAGE ON SEQUENCE outbox_seq",  # the outbox insert trigger numbers rows as the writer
        "SELECT, INSERT, UPDATE, DELETE ON idempotency_keys",
    ],
    "orders_relay": [
        "SELECT ON outbox",
        # Claiming locks rows (FOR UPDATE needs UPDATE on a column); marking and
        # failures write these columns only: never the event itself.
        "UPDATE (published_at, last_error, attempts, last_attempt_at, parked_at) ON outbox",
        "SELECT ON outbox_backlog",
        "EXECUTE ON FUNCTION outbox_prune(interval, integer)",
    ],
    "orders_consumer": [
        "SELECT ON orders",
        "UPDATE (status, version) ON orders",
        "INSERT ON order_status_history",
        "SELECT (id) ON order_status_history",  # an insert returns the new row's id
        "INSERT ON outbox",
        "USAGE ON SEQUENCE outbox_seq",
        "SELECT, INSERT ON processed_events",
        "UPDATE (outcome, detail) ON processed_events",
    ],
}

CREATE_ROLES = "\n".join(
    f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
    END IF;
END $$;"""
    for role in ROLES
)

# Drop a role only if nothing in another database still refers to it; its
# members (the login users) simply lose the membership.
DROP_ROLES = "\n".join(
    f"""
DO $$ BEGIN
    DROP ROLE IF EXISTS {role};
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'role {role} is still used by another database; kept';
END $$;"""
    for role in ROLES
)

LOCK_DOWN = """
-- Only the owner creates objects (PostgreSQL 15+ does this already; older ones do not).
DO $$ BEGIN
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
END $$;
-- Functions are executable by everyone unless revoked: pruning and unparking are
-- the relay's and the operator's, not the API's.
REVOKE EXECUTE ON FUNCTION outbox_prune(interval, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION outbox_unpark(uuid) FROM PUBLIC;
-- The relay prunes through this function and has no DELETE of its own: it runs as
-- its owner, with a fixed search_path so a caller cannot slip in its own objects.
ALTER FUNCTION outbox_prune(interval, integer) SECURITY DEFINER;
ALTER FUNCTION outbox_prune(interval, integer) SET search_path FROM CURRENT;
"""

UNLOCK = """
ALTER FUNCTION outbox_prune(interval, integer) RESET search_path;
ALTER FUNCTION outbox_prune(interval, integer) SECURITY INVOKER;
GRANT EXECUTE ON FUNCTION outbox_prune(interval, integer) TO PUBLIC;
GRANT EXECUTE ON FUNCTION outbox_unpark(uuid) TO PUBLIC;
"""


def _schema_usage(verb: str, role: str) -> str:
    preposition = "TO" if verb == "GRANT" else "FROM"
    return (
        "DO $$ BEGIN EXECUTE format("
        f"'{verb} USAGE ON SCHEMA %I {preposition} {role}', current_schema()); END $$;"
    )


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    op.execute(LOCK_DOWN)
    for role, grants in GRANTS.items():
        op.execute(_schema_usage("GRANT", role))
        for grant in grants:
            op.execute(f"GRANT {grant} TO {role}")


def downgrade() -> None:
    for role, grants in GRANTS.items():
        for grant in grants:
            op.execute(f"REVOKE {grant} FROM {role}")
        op.execute(_schema_usage("REVOKE", role))
    op.execute(UNLOCK)
    op.execute(DROP_ROLES)
