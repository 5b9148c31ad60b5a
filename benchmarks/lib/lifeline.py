"""A child of a benchmark dies with it, whatever happens to the benchmark (even SIGKILL).

Imported first by every process a benchmark starts (``trampoline``, ``benchmarks.echo_peer``,
``benchmarks.sdk_server``), so it imports the standard library only. That is why it does not reuse the
workers' ``shared.worker.process.die_with_parent`` (the same two steps): importing ``shared.worker`` takes about
0.5 s and 11 MB (pydantic, msgpack, the tool host), which the trampoline would pay before every ``exec``
and which would inflate the SDK-only baseline server, whose RSS the memory benchmark compares with.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
PARENT_GONE = 3
"""Exit code of a child whose benchmark was gone before the child could ask to die with it."""


def die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``, kept across
    ``exec``); then exit with ``PARENT_GONE`` if the parent is no longer ``parent``, which closes the race
    of a benchmark dying before the request was made. Elsewhere than Linux only the check is made."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        sys.exit(PARENT_GONE)
