"""``python -m shared.worker.probe PATH...``: run by the supervisor at start, as ``worker_user``, to find out
what a worker would hit only after its drop (``supervisor.worker_user``).

That it runs at all shows that the user can start the interpreter, read its standard library and import
the worker's own packages (this module imports ``shared.worker``, as every worker does). Then each
``PATH`` must be usable by the user: a folder searchable and writable (the queue worker creates the task
database's ``-wal`` and ``-shm`` files in its folder), a file readable and writable. Each failure is one
line on stderr, ``PATH: what is missing``; the exit code is then ``EXIT_UNUSABLE`` (any other code is the
interpreter's own failure, with its message last on stderr), else 0.
"""

from __future__ import annotations

import os
import sys

import shared.worker  # noqa: F401 - importable by this user: that is part of the check
from shared.exits import EXIT_UNUSABLE


def problems(paths: list[str]) -> list[str]:
    """One line per path this process cannot use as the module docstring says."""
    found = []
    for path in map(os.path.abspath, paths):
        closed = _closed_ancestor(path)
        if closed is not None:
            found.append(f"{path}: {closed} cannot be searched by uid {os.getuid()}")
        elif os.path.isdir(path):
            if not os.access(path, os.W_OK | os.X_OK):
                found.append(f"{path}: the folder is not writable by uid {os.getuid()}")
        elif os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
            found.append(f"{path}: the file is not readable and writable by uid {os.getuid()}")
    return found


def _closed_ancestor(path: str) -> str | None:
    """The first folder above ``path`` this process cannot search, or None."""
    parts = path.split(os.sep)[1:-1]
    for depth in range(len(parts) + 1):
        folder = os.sep + os.sep.join(parts[:depth])
        if not os.access(folder, os.X_OK):
            return folder
    return None


if __name__ == "__main__":
    lines = problems(sys.argv[1:])
    for line in lines:
        print(line, file=sys.stderr)
    sys.exit(EXIT_UNUSABLE if lines else 0)
