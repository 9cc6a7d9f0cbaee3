"""Generated passwords for a local stack, kept beside its data (files readable by us alone)."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, created with mode 0600 (it holds passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def load_or_make(path: Path, names: Iterable[str]) -> dict[str, str]:
    """A password per name: the ones in `path`, or new random ones written there.

    Hex only, so that they need no quoting in URLs, JAAS or properties files.
    """
    wanted = set(names)
    if path.exists():
        found: dict[str, str] = json.loads(path.read_text())
        if set(found) == wanted:
            return found
    made = {name: secrets.token_hex(24) for name in sorted(wanted)}
    write_private(path, json.dumps(made, indent=2))
    return made
