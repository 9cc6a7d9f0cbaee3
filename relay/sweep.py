"""Which shards the next claim reads: all of ours, or one at a time through a backlog.

A claim over every shard takes the oldest rows wherever they are, which is what live
traffic wants. Through a backlog it is costly: a full batch spreads over every shard,
and each shard touched is one Kafka transaction (one producer per shard lease), so a
batch of 2,000 rows over 10,000 keys was 32 transactions and their commit markers —
Kafka's work, not ours, set the drain's pace. So after a full claim over all shards,
the relay sweeps: one claim per shard, in turn, each one transaction; then it claims
over all shards again, and sweeps again if that claim is full too.

Only with fencing: the unfenced publisher has one producer and no per-shard
transactions, so a sweep would only make its batches smaller.

Per-key order is untouched: a key lives in one shard, and within a shard rows are
still claimed oldest first. What a sweep trades is fairness between shards during a
backlog: a shard's rows may wait for the others' turns (at most one batch each).
"""

from __future__ import annotations

from collections.abc import Sequence


class Sweep:
    def __init__(self, *, enabled: bool = True) -> None:
        self._enabled = enabled  # off: every claim reads all shards
        self._pending: list[int] = []  # shards still to claim one by one, in order

    def next_shards(self, owned: Sequence[int]) -> list[int]:
        """The shards the next claim reads: the sweep's next one we still own, or all."""
        while self._pending:
            shard = self._pending.pop(0)
            if shard in owned:
                return [shard]
        return list(owned)

    def claimed(self, shards: Sequence[int], rows: int, limit: int) -> None:
        """After a claim of `rows` from `shards`: a full claim over several starts a sweep."""
        if self._enabled and len(shards) > 1 and rows >= limit:
            self._pending = list(shards)
