"""Tokens already verified, so that a client's next request skips the signature check.

Invariant: a hit is accepted only if an uncached verification at this instant would
accept it. What a token's verdict depends on splits in two:
- the token's own bytes (header, signature, iss, aud, sub, the principal), fixed by the
  key that verified it: remembered, with that key;
- the world outside it (the clock, the key source): asked again on every hit. The
  Verifier asks its key source for the entry's kid and alg and counts a hit only if it
  answers with the very key object the token was verified with (a JWKS refetch makes new
  objects, so each token is verified once more after one); `recheck` then applies
  PyJWT's time comparisons (jwt/api_jwt.py `_validate_iat`/`_nbf`/`_exp`, same order,
  same operands) with the same messages the uncached path gives.
Only tokens that verified are remembered, so junk cannot fill the cache; it is bounded
(least recently used goes first) and swept by nobody: an expired entry is dropped when
it is next presented, or when it is the least recently used.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from app.auth.keys import PublicKey
from app.domain.errors import InvalidToken
from app.domain.principal import Principal

# Memory: a token is at most MAX_TOKEN_BYTES (8 KiB), so the keys hold at most 32 MiB
# in the worst case; real tokens are nearer 0.5-1 KiB, a few MiB in all.
VERIFIED_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """What a successful verification found, and what must be checked again on reuse."""

    principal: Principal
    kid: str | None
    alg: str
    key: PublicKey  # the object the key source gave; a hit needs the same object again
    exp: int  # as PyJWT compared it: int(claims["exp"])
    not_before: int | None  # the later of int(nbf) and int(iat), None if neither is there

    @classmethod
    def of(
        cls,
        principal: Principal,
        kid: str | None,
        alg: str,
        key: PublicKey,
        claims: dict[str, object],
    ) -> VerifiedToken:
        instants = [_instant(claims[name]) for name in ("nbf", "iat") if name in claims]
        return cls(principal, kid, alg, key, _instant(claims["exp"]), max(instants, default=None))


def _instant(value: object) -> int:
    """A time claim the way PyJWT reads it, int(value): it has just done so without error."""
    assert isinstance(value, int | float | str)
    return int(value)


class VerifiedTokens:
    """A bounded LRU of verified tokens, keyed by the token exactly as sent."""

    def __init__(
        self,
        leeway: float,
        *,
        capacity: int = VERIFIED_TOKENS,
        clock: Callable[[], float] = time.time,  # wall clock, as PyJWT's datetime.now()
    ) -> None:
        self._leeway, self._capacity, self._clock = leeway, capacity, clock
        # An OrderedDict, not a dict evicting next(iter(d)): measured under churn of
        # distinct tokens, 265 ns an insert against 3.5 µs (the dict's scan over the
        # holes its deletions leave at the front); a hit costs ~90 ns more, nothing
        # beside what it saves (Verifier.principal on one ES256 token: ~210 µs
        # verified, ~2-3 µs remembered).
        self._entries: OrderedDict[str, VerifiedToken] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> VerifiedToken | None:
        entry = self._entries.get(token)
        if entry is not None:
            self._entries.move_to_end(token)
        return entry

    def remember(self, token: str, entry: VerifiedToken) -> None:
        self._entries[token] = entry
        self._entries.move_to_end(token)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        # pop, not del: another request may have dropped it while this one awaited a key
        self._entries.pop(token, None)

    def recheck(self, token: str, entry: VerifiedToken) -> Principal:
        """The entry's principal if its times hold now, as PyJWT would judge them."""
        now = self._clock()
        if entry.not_before is not None and entry.not_before > now + self._leeway:
            raise InvalidToken("the token is not valid yet")  # kept: it may become valid
        if entry.exp <= now - self._leeway:
            self.forget(token)
            raise InvalidToken("the token has expired")
        return entry.principal
