"""Advisory-lock classes: the first int4 of PostgreSQL's two-key advisory locks.

One class per purpose keeps our locks apart from each other and from anyone
else's single-key locks (the two key spaces never overlap). The outbox class is
also written into migration 0001's trigger; they must stay equal.
"""

from __future__ import annotations

OUTBOX_KEY = 7001  # held by a writer of one outbox key until commit (commit order)
# 7002 and 7003 were the relays' shard and presence locks; leases are rows now (0004).
IDEMPOTENCY_KEY = 7004  # held while a request with that Idempotency-Key runs

OUTBOX_SHARDS = 32  # must match `outbox.shard`'s expression in migration 0001
