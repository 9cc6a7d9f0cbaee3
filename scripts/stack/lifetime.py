"""Children that die with the process that started them (Linux: the parent-death signal).

`make dev` starts PostgreSQL, Kafka, api, relay and consumer in their own sessions, so a
Ctrl-C reaches only the orchestrator, which stops them in order. Without more, a
SIGKILLed orchestrator (or a closed terminal) would leave them running — holding port
8080 and the database. `die_with_parent(argv)` runs a child through util-linux's
`setpriv --pdeathsig`, which sets the signal and then execs the command (same PID): the
kernel sends it when the parent goes away, however it went. A parent that dies before
setpriv has set the signal would send nothing, so a shell between setpriv and the command
checks that its parent is still ours and exits otherwise. Where setpriv is missing (not
Linux), the command runs as before.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from collections.abc import Sequence

# $0 is the parent's PID; $PPID is the shell's parent when it started, after setpriv
# set the signal: if they differ the parent died in between, and nobody will signal us.
ORPHANED_BEFORE_START = '[ "$PPID" = "$0" ] || exit 1; exec "$@"'


def die_with_parent(argv: Sequence[str], signum: int = signal.SIGTERM) -> list[str]:
    """`argv`, arranged to receive `signum` when the calling process dies.

    The kernel ties the signal to the thread that started the child: start it from a
    thread that lives as long as the child should (the main thread, here).
    """
    setpriv = shutil.which("setpriv") if sys.platform.startswith("linux") else None
    if setpriv is None:
        return list(argv)
    return [
        setpriv,
        f"--pdeathsig={signal.Signals(signum).name}",
        "--",
        "/bin/sh",
        "-c",
        ORPHANED_BEFORE_START,
        str(os.getpid()),
        *argv,
    ]
