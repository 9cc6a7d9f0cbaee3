"""Tokens an attacker or a confused client would send: each must be refused with a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from scripts.stack.tokens import (
    AUDIENCE,
    CUSTOMER_SCOPES,
    ISSUER,
    SEED_CUSTOMER,
    SigningKey,
)

READ_ONLY = ("orders:read",)
__all__ = ["READ_ONLY", "SEED_CUSTOMER", "hostile_tokens", "unsigned"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SEED_CUSTOMER,
        "scope": " ".join(CUSTOMER_SCOPES),
        "iat": now,
        "exp": now + 3600,
        **changes,
    }


def unsigned(header: dict[str, object], claims: dict[str, object], signature: bytes = b"") -> str:
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signature)}"


def _tampered(token: str) -> str:
    """The same signature over a payload that now names another customer."""
    head, body, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "00000000-0000-4000-8000-000000000000"
    return f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"


def _hs256_with_public_key(key: SigningKey) -> str:
    """The classic algorithm confusion: HMAC keyed with the server's public key."""
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid}
    signing_input = unsigned(header, _claims()).rsplit(".", 1)[0]
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def hostile_tokens(key: SigningKey) -> dict[str, tuple[str, str]]:
    """Authorization headers, by name, that must all be 401 invalid-token."""
    now = int(time.time())
    stranger = SigningKey(SigningKey.generate().private, key.kid)  # right kid, wrong key
    bearer = {
        "garbage": "garbage",
        "alg-none": unsigned({"alg": "none", "typ": "JWT"}, _claims()),
        "alg-none-signed": unsigned({"alg": "none"}, _claims(), b"x"),
        "hs256-public-key": _hs256_with_public_key(key),
        "tampered-payload": _tampered(key.customer()),
        "expired": key.customer(ttl=-3600),
        "not-yet-valid": key.customer(nbf=now + 3600),
        "wrong-audience": key.customer(audience="someone-else"),
        "wrong-issuer": key.customer(issuer="https://evil.example"),
        "signed-by-another-key": stranger.customer(),
        "customer-not-a-uuid": key.token("alice", CUSTOMER_SCOPES),
        "huge": key.customer(padding="x" * 10_000),
    }
    return {
        "empty": ("Authorization", ""),
        "basic": ("Authorization", "Basic dXNlcjpwYXNz"),
        "bearer-only": ("Authorization", "Bearer"),
        **{name: ("Authorization", f"Bearer {token}") for name, token in bearer.items()},
    }
