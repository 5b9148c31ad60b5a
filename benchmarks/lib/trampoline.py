"""``python -m benchmarks.lib.trampoline PARENT PROGRAM [ARG...]``: become ``PROGRAM``, dying with ``PARENT``.

Every server and tool of ``python -m benchmarks`` (the supervisor, the SDK-only server, ``wrk``,
``py-spy``) is started through it: ``PR_SET_PDEATHSIG`` survives ``exec``, so the program dies with the
benchmark although it knows nothing about it. The pid stays the same, so the benchmark stops the program
by the pid it started.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from benchmarks.lib.lifeline import die_with_parent


def main(argv: list[str]) -> NoReturn:
    """``argv`` is ``[PARENT, PROGRAM, ARG...]``; ``PROGRAM`` is looked up in ``PATH``."""
    die_with_parent(int(argv[0]))
    os.execvp(argv[1], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
