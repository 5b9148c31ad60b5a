"""Running a process that drops to an unprivileged user (``worker_user``) on a machine where that user
cannot read the interpreter.

On the project's machines Python lives under ``/root/.pyenv`` and ``/root`` is mode 0700: a process that
has dropped to ``nobody`` cannot import one more module of the standard library. The product refuses such
a start with one line (its start-up probe, tested too); to test a real drop, ``reachable`` wraps a
command so that it runs in a mount namespace of its own in which every folder on the way to the
interpreter, the virtualenv and the repository that ``nobody`` cannot search is covered by an empty
0755 tmpfs with the one entry the path needs bound back in. Nothing outside the namespace changes, and
the namespace ends with the process; the command keeps its pid (``unshare`` and ``sh`` exec it), so tests
stop it by pid as any other.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
USER = "nobody"


def needs_root() -> pytest.MarkDecorator:
    return pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another user needs root")


def closed_folders(paths: list[Path], user: str = USER) -> dict[Path, set[str]]:
    """Each folder on the way to ``paths`` that ``user`` cannot search, with the entries of it on the way
    (outermost first)."""
    entry = pwd.getpwnam(user)
    closed: dict[Path, set[str]] = {}
    for path in paths:
        for folder, child in zip(path.parents[::-1], path.parts[1:], strict=False):
            info = folder.stat()
            if info.st_uid == entry.pw_uid:
                bit = stat.S_IXUSR
            elif info.st_gid == entry.pw_gid:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if not info.st_mode & bit:
                closed.setdefault(folder, set()).add(child)
    return dict(sorted(closed.items(), key=lambda item: len(item[0].parts)))


def reachable(command: list[str], user: str = USER) -> list[str]:
    """``command``, wrapped (see the module) when ``user`` cannot reach the interpreter or this checkout."""
    paths = [Path(p).resolve() for p in (sys.base_prefix, sys.prefix, REPO, os.path.realpath(sys.executable))]
    closed = closed_folders(paths, user)
    if not closed:
        return command
    if shutil.which("unshare") is None:
        pytest.skip(
            f"{user} cannot reach the interpreter ({', '.join(map(str, closed))}) and there is no unshare"
        )
    steps = ["set -e", "stage=$(mktemp -d)"]
    for index, (folder, children) in enumerate(closed.items()):
        entries = [(folder / child, f'"$stage/{index}-{n}"') for n, child in enumerate(sorted(children))]
        for original, kept in entries:
            make = "mkdir" if original.is_dir() else "touch"
            steps += [f"{make} {kept}", f"mount --bind {shlex.quote(str(original))} {kept}"]
        steps.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(folder))}")
        for original, kept in entries:
            make, remove = ("mkdir", "rmdir") if original.is_dir() else ("touch", "rm -f")
            quoted = shlex.quote(str(original))
            steps += [
                f"{make} {quoted}",
                f"mount --bind {kept} {quoted}",
                f"umount {kept}",
                f"{remove} {kept}",
            ]
    steps += ['rmdir "$stage"', 'exec "$@"']  # rmdir, never rm -r: nothing bound is ever deleted
    script = "\n".join(steps)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]
