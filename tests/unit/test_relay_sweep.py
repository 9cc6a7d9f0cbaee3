"""The relay's shard sweep: all shards until a claim comes back full, then one at a time."""

from __future__ import annotations

from relay.sweep import Sweep


def test_claims_over_all_shards_while_claims_are_not_full() -> None:
    sweep = Sweep()
    assert sweep.next_shards([1, 2, 3]) == [1, 2, 3]
    sweep.claimed([1, 2, 3], rows=10, limit=100)
    assert sweep.next_shards([1, 2, 3]) == [1, 2, 3]


def test_a_full_claim_over_several_shards_starts_a_sweep_through_each() -> None:
    sweep = Sweep()
    sweep.claimed([1, 2, 3], rows=100, limit=100)
    seen: list[list[int]] = []
    for _ in range(3):
        shards = sweep.next_shards([1, 2, 3])
        seen.append(shards)
        sweep.claimed(shards, rows=100, limit=100)  # full single-shard claims start nothing
    assert seen == [[1], [2], [3]]
    assert sweep.next_shards([1, 2, 3]) == [1, 2, 3]


def test_a_sweep_skips_shards_no_longer_ours() -> None:
    sweep = Sweep()
    sweep.claimed([1, 2, 3], rows=100, limit=100)
    assert sweep.next_shards([3]) == [3]
    assert sweep.next_shards([3]) == [3]  # the sweep is over: all of ours


def test_a_disabled_sweep_always_claims_all_shards() -> None:
    sweep = Sweep(enabled=False)
    sweep.claimed([1, 2, 3], rows=100, limit=100)
    assert sweep.next_shards([1, 2, 3]) == [1, 2, 3]
