"""The API's settings with no database behind it, for in-process tests of the HTTP layer:
a request that passes every check gets as far as a 503 (nothing answers on port 9)."""

from __future__ import annotations

from pathlib import Path

from app import config
from scripts.stack.tokens import AUDIENCE, ISSUER, SigningKey


def offline_settings(key: SigningKey, folder: Path, **extra: str) -> config.Settings:
    """Settings trusting `key`'s public half (written under `folder`), plus `extra` variables."""
    public = folder / "public.pem"
    public.write_bytes(key.public_pem())
    env = {
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "DB_CONNECT_TIMEOUT": "0.5",
        "AUTH_PUBLIC_KEY_FILE": str(public),
        "AUTH_ISSUER": ISSUER,
        "AUTH_AUDIENCE": AUDIENCE,
        "CURSOR_SECRET": "s" * 32,
    }
    return config.load({**env, **extra}, env_file=None)
