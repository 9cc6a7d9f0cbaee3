"""Who acted, and whose idempotency key: history rows name their actor, keys their principal.

`order_status_history.actor` is "customer:<sub>", "staff:<sub>", "consumer", or the
CloudEvents source of another system's event; rows written before this migration
keep NULL (not known then). An idempotency key belongs to the principal that sent
it, so two callers with one key never see each other's response: the primary key
becomes (principal, key), and keys stored before keep the principal '' (no token
of ours maps to it, so they simply expire).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE order_status_history ADD COLUMN actor text
    CONSTRAINT order_status_history_actor_length CHECK (length(actor) BETWEEN 1 AND 300);

ALTER TABLE idempotency_keys ADD COLUMN principal text NOT NULL DEFAULT ''
    CONSTRAINT idempotency_keys_principal_length CHECK (length(principal) <= 300);
ALTER TABLE idempotency_keys ALTER COLUMN principal DROP DEFAULT;
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (principal, key);
"""

# Keys are a 24-hour cache of responses: going back keeps one per key (the oldest), as
# the old primary key allows only one.
DOWNGRADE = """
DELETE FROM idempotency_keys k USING idempotency_keys older
 WHERE k.key = older.key AND (k.created_at, k.principal) > (older.created_at, older.principal);
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys DROP COLUMN principal;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_pkey PRIMARY KEY (key);

ALTER TABLE order_status_history DROP COLUMN actor;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
