"""A librdkafka for kcat that can log in to Kafka 4 with SCRAM.

librdkafka before 2.6.1 builds the SCRAM client-final message with a nonce that
Kafka 4 rejects ("invalid credentials"; confluentinc/librdkafka#4895), and the
distributions' kcat often links such a one (Debian 12: 2.0.2). kcat links
librdkafka dynamically with a stable ABI, so it can run on the newer copy that
confluent-kafka's wheel carries: `kcat_env()` says how.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

from scripts.stack.paths import state_dir

FIXED_IN = (2, 6, 1)


def _wheel_library() -> Path | None:
    import confluent_kafka  # noqa: PLC0415 - only to locate the wheel's files

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    return found[0] if found else None


def _kcat_librdkafka(kcat: str) -> tuple[int, ...] | None:
    result = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=False)
    match = re.search(r"librdkafka (\d+)\.(\d+)\.(\d+)", result.stdout + result.stderr)
    return tuple(int(part) for part in match.groups()) if match else None


@functools.cache
def kcat_env() -> dict[str, str]:
    """Environment for running kcat: empty if its own librdkafka is recent enough,
    else LD_LIBRARY_PATH to a directory holding the wheel's librdkafka."""
    kcat = shutil.which("kcat")
    library = _wheel_library()
    version = _kcat_librdkafka(kcat) if kcat else None
    if kcat is None or library is None or (version is not None and version >= FIXED_IN):
        return {}
    directory = state_dir("librdkafka")
    link = directory / "librdkafka.so.1"
    if not link.exists() or link.resolve() != library.resolve():
        link.unlink(missing_ok=True)
        link.symlink_to(library.resolve())
    return {"LD_LIBRARY_PATH": str(directory)}
