"""Children that die with the process that started them (Linux: the parent-death signal).

`make dev` starts PostgreSQL, Kafka, api, relay and consumer in their own sessions, so a
Ctrl-C reaches only the orchestrator, which stops them in order. Without more, a
SIGKILLed orchestrator (or a closed terminal) would leave them running — holding port
8080 and the database. `die_with_parent(argv)` runs a child through util-linux's
`setpriv --pdeathsig`, which sets the signal and then execs the command (same PID): the
kernel sends it when the parent goes away, however it went. Where setpriv is missing
(not Linux), the command runs as before.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Sequence


def die_with_parent(argv: Sequence[str], signum: int = signal.SIGTERM) -> list[str]:
    """`argv`, arranged to receive `signum` when the calling process dies.

    The kernel ties the signal to the thread that started the child: start it from a
    thread that lives as long as the child should (the main thread, here).
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return list(argv)
    return [setpriv, f"--pdeathsig={signal.Signals(signum).name}", "--", *argv]
