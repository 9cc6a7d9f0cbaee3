"""Advisory-lock classes: the first int4 of PostgreSQL's two-key advisory locks.

One class per purpose keeps our locks apart from each other and from anyone
else's single-key locks (the two key spaces never overlap). Class 7001 is the
outbox insert trigger's (migration 0001: a writer of one outbox key holds it
until commit, which makes sequence order commit order); 7002 and 7003 were the
relays' shard and presence locks, rows now (0004). tests/integration/
test_mirrored_constants.py checks against the migrated database that no class
here is one the database's own functions take, and that OUTBOX_SHARDS is the
database's shard count.
"""

from __future__ import annotations

IDEMPOTENCY_KEY = 7004  # held while a request with that Idempotency-Key runs

OUTBOX_SHARDS = 32  # `outbox.shard` is hashtext(key) & (OUTBOX_SHARDS - 1); one lease each
