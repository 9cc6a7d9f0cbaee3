"""Relay leases that expire: shard ownership and relay presence as rows with a deadline.

Session advisory locks (the previous leases) live as long as the session, so a relay
that froze, hung or was cut off behind a half-open connection kept its shards for
ever. A lease row is owned until `expires_at` (the database's clock, the only one all
relays share); its owner renews it a few times per TTL, and any relay may take a
lease that has expired. Every takeover bumps `epoch`, the fencing token: the relay
initialises the shard's Kafka transactional producer after taking the lease, which
fences whatever the previous owner still has in flight.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OUTBOX_SHARDS = 32  # app/db/locks.py; the outbox's shard expression in 0001

UPGRADE = f"""
CREATE TABLE relay_members (
    relay_id    uuid        PRIMARY KEY,
    name        text        NOT NULL CONSTRAINT relay_members_name_length CHECK (length(name) <= 200),
    expires_at  timestamptz NOT NULL
);
COMMENT ON TABLE relay_members IS
    'Live relays: each renews its row; one whose expires_at has passed no longer counts';

CREATE TABLE relay_leases (
    shard       integer     PRIMARY KEY
                            CONSTRAINT relay_leases_shard_range CHECK (shard >= 0 AND shard < {OUTBOX_SHARDS}),
    owner       uuid,
    epoch       bigint      NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL DEFAULT '-infinity'
);
COMMENT ON TABLE relay_leases IS
    'Which relay publishes which outbox shard, until expires_at; epoch grows at every takeover';

INSERT INTO relay_leases (shard) SELECT generate_series(0, {OUTBOX_SHARDS - 1});

CREATE VIEW relay_lease_status AS
SELECT l.shard, l.owner, m.name AS owner_name, l.epoch,
       l.expires_at > clock_timestamp()        AS live,
       l.expires_at - clock_timestamp()        AS remaining
  FROM relay_leases l LEFT JOIN relay_members m ON m.relay_id = l.owner
 ORDER BY l.shard;
"""

# Where migration 0002's process roles exist, the relay's role may run its leases (and
# nothing else here); without them (the chain being re-ordered) this is a no-op.
GRANTS = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'orders_relay') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON relay_members TO orders_relay;
        GRANT SELECT, UPDATE ON relay_leases TO orders_relay;
    END IF;
END
$$;
"""

DOWNGRADE = """
DROP VIEW IF EXISTS relay_lease_status;
DROP TABLE IF EXISTS relay_leases, relay_members;
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(GRANTS)


def downgrade() -> None:
    op.execute(DOWNGRADE)
