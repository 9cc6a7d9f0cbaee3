"""A status change carries its own time: the writer sets `updated_at`, the trigger keeps it.

The API and the consumer build a status change (new status, version and `updated_at`)
and the event announcing it before they write, so the change, its history entry and
its outbox row are one statement, with nothing to read back (a new order's times
already came from the API's clock: this makes every time of an order the writer's).
`orders_touch_updated_at` therefore keeps an `updated_at` the UPDATE sets, stamps
`now()` on one that does not (the items trigger's totals, an operator's fix), and
refuses one that goes back in time: an order's times only move forward.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

WRITERS = "orders_api, orders_consumer"


def upgrade() -> None:
    op.execute("""
CREATE OR REPLACE FUNCTION orders_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := now();
    ELSIF NEW.updated_at < OLD.updated_at THEN
        RAISE EXCEPTION 'order % would go back in time: % < %',
            NEW.id, NEW.updated_at, OLD.updated_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'orders_updated_at_forward';
    END IF;
    RETURN NEW;
END $$;
""")
    op.execute(f"GRANT UPDATE (updated_at) ON orders TO {WRITERS}")


def downgrade() -> None:
    op.execute(f"REVOKE UPDATE (updated_at) ON orders FROM {WRITERS}")
    op.execute("""
CREATE OR REPLACE FUNCTION orders_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;
""")
