"""A worker becoming ``worker_user``/``worker_group`` for good, before any tool module is imported.

The supervisor (root) starts the worker as root; ``run_worker`` connects the worker's socket to the
router first (the router's ipc socket lives in root's 0700 runtime directory, which the worker user
cannot reach, and never needs to: the connection is made once and kept), then calls ``drop_privileges``,
then arms the parent-death signal and confines the process (``confine``), because changing credentials
clears the one and resets the other.

The drop, in the order that leaves no way back: the supplementary groups (the user's, as ``initgroups``
finds them, with the worker's group), then real, effective and saved group ids, then real, effective and
saved user ids (``setresgid``/``setresuid``: a saved id left at 0 would let the process become root
again). glibc applies each change to every thread of the process (ZeroMQ's threads already run). Then it
is checked rather than trusted: every id of every thread is the new one, and ``setuid(0)`` fails.

``HOME``, ``USER`` and ``LOGNAME``, when the worker's environment has them, are set to the new user's.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


class PrivilegeError(Exception):
    """The worker could not become the user it was told to, or could become root again."""


def drop_privileges(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` (real, effective and saved; supplementary groups: the user's) for good.

    Raises:
        PrivilegeError: a step failed, or the check after it found a way back or a thread left behind;
            the message says which.
    """
    try:
        entry: pwd.struct_passwd | None = pwd.getpwuid(uid)
    except KeyError:
        entry = None
    try:
        if entry is not None:
            os.initgroups(entry.pw_name, gid)
        else:
            os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise PrivilegeError(f"cannot become uid {uid} gid {gid}: {exc.strerror}") from None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise PrivilegeError(f"ids after the drop are uid {os.getresuid()} gid {os.getresgid()}")
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:
            raise PrivilegeError("setuid(0) succeeded after the drop")
    lagging = _threads_not_as(uid, gid)
    if lagging:
        raise PrivilegeError(f"thread(s) {', '.join(lagging)} kept their ids")
    if entry is not None:
        for name, value in (("HOME", entry.pw_dir), ("USER", entry.pw_name), ("LOGNAME", entry.pw_name)):
            if name in os.environ:
                os.environ[name] = value


def _threads_not_as(uid: int, gid: int) -> list[str]:
    """The ids of this process's threads whose real, effective, saved or filesystem ids are not
    ``uid``/``gid`` (Linux: ``/proc/self/task``; elsewhere nothing to check)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []
    lagging = []
    for task in tasks.iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended
            continue
        ids = {
            line.split(":")[0]: line.split()[1:]
            for line in status.splitlines()
            if line[:4] in ("Uid:", "Gid:")
        }
        if set(ids.get("Uid", ())) != {str(uid)} or set(ids.get("Gid", ())) != {str(gid)}:
            lagging.append(task.name)
    return lagging
