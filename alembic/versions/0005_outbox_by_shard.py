"""An index of unpublished outbox rows by shard, for the relay's shard-by-shard sweep.

When a claim over all its shards comes back full (a backlog), the relay claims shard
by shard for a while (relay/loop.py): one Kafka transaction per batch instead of one
per shard touched. `outbox_unpublished` (seq) would make such a claim walk the rows of
every other shard to find one shard's oldest; this index finds them directly.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "CREATE INDEX outbox_unpublished_by_shard ON outbox (shard, seq)"
        " WHERE published_at IS NULL AND parked_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX outbox_unpublished_by_shard")
