"""The outbox read through its partial indexes: unpublished rows by shard, and a backlog
view that no longer scans the whole table.

When a claim over all its shards comes back full (a backlog), the fenced relay claims
shard by shard for a while (relay/sweep.py): one Kafka transaction per batch instead of
one per shard touched. `outbox_unpublished` (seq) would make such a claim walk the rows of
every other shard to find one shard's oldest; `outbox_unpublished_by_shard` finds them.

`outbox_backlog` filtered on `published_at IS NULL` alone, which neither partial index
(unpublished, parked) matches, so it read every row the outbox still keeps: ~50 ms with a
few hundred thousand published rows, every 5 s on the relay's own connection (its backlog
gauge), which showed as a 5-second beat of publishes delayed by that much. It now counts
each kind through its own index; same columns, same meaning.

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

BACKLOG = """
CREATE OR REPLACE VIEW outbox_backlog AS
SELECT waiting.n                                                 AS unpublished,
       parked.n                                                  AS parked,
       least(waiting.oldest, parked.oldest)                      AS oldest_created_at,
       coalesce(clock_timestamp() - least(waiting.oldest, parked.oldest), interval '0')
                                                                 AS oldest_age
  FROM (SELECT count(*) AS n, min(created_at) AS oldest FROM outbox
         WHERE published_at IS NULL AND parked_at IS NULL) waiting,
       (SELECT count(*) AS n, min(created_at) AS oldest FROM outbox
         WHERE published_at IS NULL AND parked_at IS NOT NULL) parked;
"""

BACKLOG_BEFORE = """
CREATE OR REPLACE VIEW outbox_backlog AS
SELECT count(*) FILTER (WHERE parked_at IS NULL)                 AS unpublished,
       count(*) FILTER (WHERE parked_at IS NOT NULL)             AS parked,
       min(created_at)                                           AS oldest_created_at,
       coalesce(clock_timestamp() - min(created_at), interval '0') AS oldest_age
  FROM outbox
 WHERE published_at IS NULL;
"""


def upgrade() -> None:
    op.execute(
        "CREATE INDEX outbox_unpublished_by_shard ON outbox (shard, seq)"
        " WHERE published_at IS NULL AND parked_at IS NULL"
    )
    op.execute(BACKLOG)


def downgrade() -> None:
    op.execute(BACKLOG_BEFORE)
    op.execute("DROP INDEX outbox_unpublished_by_shard")
