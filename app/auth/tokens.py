"""Bearer tokens (RFC 6750) as JWTs (RFC 7519), verified with PyJWT, turned into a Principal.

A token is accepted only when every one of these holds: its `alg` is on the
allow-list (RS256, ES256, EdDSA: never `none`, never HMAC) and fits the key it
names; the signature verifies; `iss` and `aud` are ours; `exp` is in the future
and `nbf`/`iat` are not, each within AUTH_LEEWAY_SECONDS; `sub` is there. Anything
else is InvalidToken, with a reason fit to show the caller (never the token).
A token that passed is remembered (app.auth.cache), so that its next use skips the
signature check but still answers to the clock and the key source.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from uuid import UUID

import jwt
from jwt.exceptions import PyJWTError

from app.auth.cache import VERIFIED_TOKENS, VerifiedToken, VerifiedTokens
from app.auth.keys import JwksKeys, KeySource, PemKey
from app.config import AuthSettings
from app.domain.errors import InvalidToken
from app.domain.principal import Principal, Scope

log = logging.getLogger("app.auth")

MAX_TOKEN_BYTES = 8 * 1024  # a JWT larger than this is no token of ours, and costs to parse
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


class Verifier:
    def __init__(
        self,
        settings: AuthSettings,
        keys: KeySource,
        *,
        capacity: int = VERIFIED_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.issuer is not None and settings.audience is not None  # require_auth
        self._issuer, self._audience = settings.issuer, settings.audience
        self._algorithms, self._leeway = settings.algorithms, settings.leeway
        self._customer_claim = settings.customer_claim
        self._keys = keys
        self.verified = VerifiedTokens(settings.leeway, capacity=capacity, clock=clock)

    async def principal(self, token: str) -> Principal:
        """The principal a token speaks for, or InvalidToken saying why not.

        A token seen before skips the signature check, not the outside world: its key
        must still be the one the key source gives, and its times must still hold.
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("the token is too large")
        known = self.verified.get(token)
        if known is None:
            return await self._verify(token)
        try:
            key = await self._keys.key_for(known.kid, known.alg)
        except InvalidToken:
            self.verified.forget(token)  # the key is gone: this entry can never hit again
            raise
        if key is not known.key:  # the key source changed (a JWKS refetch): start afresh
            self.verified.forget(token)
            return await self._verify(token)
        return self.verified.recheck(token, known)

    async def _verify(self, token: str) -> Principal:
        """The full check, remembering the token only if it passes."""
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as exc:
            raise InvalidToken("the token is not a JWT") from exc
        alg = header.get("alg")
        if alg not in self._algorithms:
            raise InvalidToken(f"tokens signed with {alg!r} are not accepted")
        named = header.get("kid")
        kid = named if isinstance(named, str) else None
        key = await self._keys.key_for(kid, alg)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token is from another issuer") from exc
        except PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from exc
        principal = self._principal(claims)
        self.verified.remember(token, VerifiedToken.of(principal, kid, alg, key, claims))
        return principal

    def _principal(self, claims: dict[str, object]) -> Principal:
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise InvalidToken("the token's sub is not a string of 1 to 255 characters")
        scopes = scopes_of(claims)
        customer = claims.get(self._customer_claim)
        customer_id = _uuid(customer) if isinstance(customer, str) else None
        if customer_id is None and Scope.ADMIN not in scopes:
            raise InvalidToken(f"the token's {self._customer_claim} claim is not a customer id")
        return Principal(subject, customer_id, scopes)


def scopes_of(claims: dict[str, object]) -> frozenset[str]:
    """RFC 8693 `scope` (space-separated) and the `scp` many issuers use (string or list)."""
    found: set[str] = set()
    for claim in ("scope", "scp"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return frozenset(found)


def _uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


def verifier_for(settings: AuthSettings) -> Verifier:
    """The verifier the settings describe (require_auth has checked they describe one)."""
    keys: KeySource
    if settings.jwks_url:
        keys = JwksKeys(settings.jwks_url, cache_seconds=settings.jwks_cache)
    else:
        assert settings.public_key_file is not None
        keys = PemKey(settings.public_key_file, settings.algorithms)
    return Verifier(settings, keys)
