"""The image's wheelhouse: every pin of requirements.txt as a wheel, hash-checked, on the host.

    python -m scripts.wheelhouse          (or `make wheelhouse`; `make up` runs it)

The image build installs from `wheelhouse/` in the build context with `--no-index` and
`--require-hashes`, so it needs no network — what a build behind a proxy or in an air gap
needs too. The wheels are downloaded once per requirements.txt content and target
platform into .state/wheelhouse/<key>/ (pip checks each against its pinned hash), then
linked into `wheelhouse/`, which holds exactly that set and nothing stale.

Target: CPython 3.11 on the host's machine (x86_64 or aarch64) and a glibc as old as
Debian bookworm's; WHEELHOUSE_ARCH=aarch64 prepares an arm64 image's wheels on x86_64.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements.txt"
TARGET = ROOT / "wheelhouse"
CACHE = ROOT / ".state" / "wheelhouse"
PYTHON_VERSION = "3.11"
# Bookworm's glibc is 2.36: any manylinux tag up to it fits the python:3.11 image.
GLIBC_TAGS = ("2014", "_2_17", "_2_24", "_2_27", "_2_28", "_2_31", "_2_34", "_2_36")


def platforms(arch: str) -> list[str]:
    return [f"manylinux{tag}_{arch}" for tag in GLIBC_TAGS]


def key(arch: str) -> str:
    sha = hashlib.sha256(REQUIREMENTS.read_bytes())
    sha.update(f"\0{PYTHON_VERSION}\0{arch}\0{' '.join(GLIBC_TAGS)}".encode())
    return sha.hexdigest()[:12]


def download(arch: str) -> Path:
    """The cached wheel set for `arch`, downloading (hash-checked) when it is missing."""
    cached = CACHE / f"{key(arch)}-{arch}"
    if (cached / ".complete").exists():
        return cached
    print(f"wheelhouse: downloading requirements.txt's wheels for linux/{arch}…", flush=True)
    shutil.rmtree(cached, ignore_errors=True)
    cached.mkdir(parents=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--progress-bar",
            "on" if sys.stdout.isatty() else "off",
            "--disable-pip-version-check",
            "--require-hashes",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            PYTHON_VERSION,
            "--implementation",
            "cp",
            *(f"--platform={name}" for name in platforms(arch)),
            "--dest",
            str(cached),
            "--requirement",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    (cached / ".complete").touch()
    return cached


def link(source: Path, target: Path) -> None:
    """Make `target` hold exactly source's wheels (hard links where the disk allows)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for wheel in sorted(source.glob("*.whl")):
        try:
            os.link(wheel, target / wheel.name)
        except OSError:
            shutil.copy2(wheel, target / wheel.name)


def main() -> None:
    arch = os.environ.get("WHEELHOUSE_ARCH") or platform.machine()
    if arch not in {"x86_64", "aarch64"}:
        raise SystemExit(f"wheelhouse: no wheels for machine {arch!r} (x86_64 or aarch64)")
    cached = download(arch)
    link(cached, TARGET)
    count = len(list(TARGET.glob("*.whl")))
    print(f"wheelhouse: {count} wheels for linux/{arch} in {TARGET.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
