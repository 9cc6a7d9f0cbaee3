"""A local stand-in for an identity provider: a signing key pair and the tokens it signs.

`make dev` keeps one ES256 key pair and a CURSOR_SECRET under .state/auth/ (made
once, reused after) and hands the API the public half; `make token` signs with the
private half. Tests make their own pair per session with `SigningKey.generate()`.
Never used by the service itself, which only ever holds a public key.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from scripts.stack.paths import state_dir

ISSUER = "orders-dev"
AUDIENCE = "orders-api"
SEED_CUSTOMER = "123e4567-e89b-12d3-a456-426614174000"
STAFF_SUBJECT = "staff-dev"
CUSTOMER_SCOPES = ("orders:read", "orders:write")
ADMIN_SCOPES = ("orders:read", "orders:write", "orders:admin")
DAY = 24 * 3600


@dataclass(frozen=True)
class SigningKey:
    private: ec.EllipticCurvePrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()), uuid.uuid4().hex[:16])

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        return cls(private, path.stem)

    def save(self, directory: Path) -> Path:
        """Write the private key (0600) and the public key beside it; return the public file."""
        private = directory / f"{self.kid}.pem"
        private.touch(mode=0o600)
        private.write_bytes(
            self.private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        public = directory / f"{self.kid}.pub.pem"
        public.write_bytes(self.public_pem())
        return public

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def token(
        self,
        subject: str,
        scopes: tuple[str, ...],
        *,
        ttl: float = DAY,
        issuer: str = ISSUER,
        audience: str = AUDIENCE,
        **claims: object,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "scope": " ".join(scopes),
            "iat": now,
            "nbf": now,
            "exp": now + int(ttl),
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self.private, algorithm="ES256", headers={"kid": self.kid})

    def customer(self, customer_id: str = SEED_CUSTOMER, **kwargs: object) -> str:
        return self.token(customer_id, CUSTOMER_SCOPES, **kwargs)  # type: ignore[arg-type]

    def admin(self, subject: str = STAFF_SUBJECT, **kwargs: object) -> str:
        return self.token(subject, ADMIN_SCOPES, **kwargs)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DevAuth:
    """What `make dev` gives the API, kept under .state/auth/ across runs."""

    key: SigningKey
    public_key_file: Path
    cursor_secret: str

    def env(self) -> dict[str, str]:
        return {
            "AUTH_PUBLIC_KEY_FILE": str(self.public_key_file),
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": AUDIENCE,
            "CURSOR_SECRET": self.cursor_secret,
        }


def dev_auth() -> DevAuth:
    """The local key pair and cursor secret, made on first use."""
    directory = state_dir("auth")
    found = sorted(p for p in directory.glob("*.pem") if not p.name.endswith(".pub.pem"))
    key = SigningKey.load(found[0]) if found else SigningKey.generate()
    public = key.save(directory) if not found else directory / f"{key.kid}.pub.pem"
    (directory / "public.pem").write_bytes(public.read_bytes())  # a fixed name, for make up
    secret_file = directory / "cursor-secret"
    if not secret_file.exists():
        secret_file.touch(mode=0o600)
        secret_file.write_text(secrets.token_urlsafe(48))
    return DevAuth(key, public, secret_file.read_text().strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make token", description="Print a token for the local API (made by make dev)."
    )
    parser.add_argument("--customer", default="", help="customer id (default: the seed's)")
    parser.add_argument("--role", choices=["customer", "admin"], default="customer")
    parser.add_argument("--ttl", type=int, default=DAY, help="seconds it is valid (24 h)")
    parser.add_argument("--init", action="store_true", help="only make the key pair")
    args = parser.parse_args(argv)
    if args.init:
        dev_auth()
        return 0
    key = dev_auth().key
    if args.role == "admin":
        token = key.admin(ttl=args.ttl)
        who = f"staff {STAFF_SUBJECT} (orders:admin)"
    else:
        customer = args.customer or SEED_CUSTOMER
        try:
            uuid.UUID(customer)
        except ValueError:
            parser.error(f"CUSTOMER must be a UUID (got {customer!r})")
        token = key.customer(customer, ttl=args.ttl)
        who = f"customer {customer}"
    # Only the token goes to stdout, so that `-H "Authorization: Bearer $(make token)"` works.
    print(f"a token for {who}, valid {args.ttl} s:", file=sys.stderr)
    print(token, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
