"""Where token-verifying keys come from: one PEM public key, or a JWKS URL.

Both answer `key_for(kid, alg)` with a public key of the type that algorithm
needs (RSA for RS256, P-256 for ES256, Ed25519/Ed448 for EdDSA), so a token can
never pick a key of another kind (algorithm confusion). The JWKS is cached for
AUTH_JWKS_CACHE_SECONDS and fetched again when a token names a `kid` it does not
hold (a key rotation), at most once per REFETCH_AT_MOST_EVERY seconds so that
tokens with made-up kids cannot turn the API into a JWKS flood.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from app.config import ConfigError
from app.domain.errors import InvalidToken

log = logging.getLogger("app.auth")

PublicKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
MIN_RSA_BITS = 2048
REFETCH_AT_MOST_EVERY = 10.0
JWKS_TIMEOUT = 5.0
JWKS_MAX_BYTES = 256 * 1024


def fits(key: object, alg: str) -> bool:
    """Is `key` the kind of public key `alg` verifies with?"""
    if alg == "RS256":
        return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
    if alg == "ES256":
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


class KeySource(Protocol):
    async def key_for(self, kid: str | None, alg: str) -> PublicKey: ...


class PemKey:
    """One public key from a PEM file, read once at start."""

    def __init__(self, path: str, algorithms: tuple[str, ...]) -> None:
        try:
            key = load_pem_public_key(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"AUTH_PUBLIC_KEY_FILE: cannot read a PEM public key: {exc}") from exc
        if not any(fits(key, alg) for alg in algorithms):
            raise ConfigError(
                "AUTH_PUBLIC_KEY_FILE holds no RSA (2048+ bits), P-256 or Ed25519 public key "
                "for AUTH_ALGORITHMS"
            )
        self._key: PublicKey = key  # type: ignore[assignment] # checked by fits()

    async def key_for(self, kid: str | None, alg: str) -> PublicKey:
        if not fits(self._key, alg):
            raise InvalidToken(f"the key cannot verify {alg}")
        return self._key


def fetch_url(url: str) -> bytes:
    """GET the JWKS (blocking: called in a thread)."""
    with urllib.request.urlopen(url, timeout=JWKS_TIMEOUT) as response:
        body: bytes = response.read(JWKS_MAX_BYTES + 1)
    if len(body) > JWKS_MAX_BYTES:
        raise ValueError("the JWKS is larger than 256 KiB")
    return body


class JwksKeys:
    """The keys a JWKS URL publishes, by kid, cached and refetched on an unknown kid."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        fetch: Callable[[str], bytes] = fetch_url,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url, self._ttl, self._fetch, self._clock = url, cache_seconds, fetch, clock
        self._keys: dict[str, tuple[str | None, PublicKey]] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None, alg: str) -> PublicKey:
        if kid is None:
            raise InvalidToken("the token names no key (kid)")
        if self._stale() or (kid not in self._keys and self._may_refetch()):
            await self._refresh()
        if kid not in self._keys:
            raise InvalidToken("the token's key is not one the issuer publishes")
        key_alg, key = self._keys[kid]
        if (key_alg is not None and key_alg != alg) or not fits(key, alg):
            raise InvalidToken(f"the key {kid} cannot verify {alg}")
        return key

    def _stale(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= self._ttl

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._clock() - self._fetched_at >= REFETCH_AT_MOST_EVERY

    async def _refresh(self) -> None:
        async with self._lock:
            if self._fetched_at is not None and not self._may_refetch():
                return  # another request refreshed while this one waited
            try:
                body = await asyncio.to_thread(self._fetch, self._url)
                keys = published_keys(json.loads(body))
            except (OSError, ValueError) as exc:
                # Keep what we had: an outage of the issuer must not log everyone out.
                log.warning("could not fetch the JWKS", extra={"url": self._url, "error": str(exc)})
                self._fetched_at = self._clock()
                return
            self._keys, self._fetched_at = keys, self._clock()
            log.info("fetched the JWKS", extra={"url": self._url, "keys": len(keys)})


def published_keys(document: object) -> dict[str, tuple[str | None, PublicKey]]:
    """The signing keys of a JWKS by kid, each with the `alg` it is pinned to (if any).

    A key this service cannot use (another kty, a private key, no kid, `use: enc`) is
    skipped, not fatal: issuers publish keys for other consumers too.
    """
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError("the JWKS has no `keys` list")
    found: dict[str, tuple[str | None, PublicKey]] = {}
    for data in entries:
        if not isinstance(data, dict) or not isinstance(kid := data.get("kid"), str):
            continue
        if data.get("use", "sig") != "sig" or "d" in data:
            continue
        try:
            key = PyJWK(data).key
        except PyJWTError:
            continue
        alg = data.get("alg")
        if isinstance(key, PublicKey) and (alg is None or isinstance(alg, str)):
            found[kid] = (alg, key)
    return found
