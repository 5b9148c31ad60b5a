"""Running the tools as ``worker_user``/``worker_group`` when the supervisor starts as root.

A worker drops to that user itself, before it imports a tool module (``shared.worker.privileges``); the
supervisor only names the ids on its command line (``WorkerUser.of``) and, at start and before a reload
starts new workers, makes sure the drop will work (``prepare``):

- the supervisor runs as root (only root can switch a process to another user);
- the task database's folder (``task_db`` is required with ``worker_user``: the default folder, the
  supervisor's state directory, is closed to the worker user and holds the request-state key) belongs to
  the worker user, mode 0700: made so when missing, refused when it or the database's files belong to
  someone else (root never changes the owner of files in a folder another user controls);
- a probe (``python -m shared.worker.probe``, started as the worker user in the workers' environment)
  shows that user can run the interpreter, import the workers' packages and write the database's folder.

What the worker user does *not* get: the runtime directory (root's, 0700: each worker connects to the
router before its drop and keeps that one connection), the control socket, the state directory and its
request-state key.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shared.dburl import is_url
from shared.errors import ConfigError
from shared.exits import EXIT_UNUSABLE

from .containment import worker_environment
from .rundir import describe_user

if TYPE_CHECKING:
    from .config import Settings

PROBE_TIMEOUT = 30.0
"""Seconds the start-up probe may take (an interpreter start and an import of the worker package)."""
DATABASE_SUFFIXES = ("", "-wal", "-shm", ".lock")
"""The task database's files: SQLite's and the store's lock (``trio_worker.taskqueue.store``)."""


def lookup_user(value: str) -> pwd.struct_passwd:
    """The user named ``value`` (a name, or a uid in digits).

    Raises:
        ValueError: no such user.
    """
    try:
        return pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except KeyError:
        raise ValueError(f"no user {value!r} on this system") from None


def lookup_group(value: str) -> grp.struct_group:
    """The group named ``value`` (a name, or a gid in digits).

    Raises:
        ValueError: no such group.
    """
    try:
        return grp.getgrgid(int(value)) if value.isdigit() else grp.getgrnam(value)
    except KeyError:
        raise ValueError(f"no group {value!r} on this system") from None


@dataclass(frozen=True)
class WorkerUser:
    """The user and group the workers drop to."""

    name: str
    uid: int
    gid: int

    @classmethod
    def of(cls, user: str | None, group: str | None) -> WorkerUser | None:
        """``worker_user``/``worker_group`` as ids (the group defaults to the user's primary group), or
        None when ``user`` is None.

        Raises:
            ValueError: no such user or group.
        """
        if user is None:
            return None
        entry = lookup_user(user)
        gid = entry.pw_gid if group is None else lookup_group(group).gr_gid
        return cls(entry.pw_name, entry.pw_uid, gid)


def prepare(settings: Settings, *, euid: int | None = None) -> WorkerUser | None:
    """Make sure the workers can drop to ``worker_user`` (see the module); None without one.

    ``euid`` is this process's effective uid (tests pass another).

    Raises:
        ConfigError: one line naming what stands in the way.
    """
    try:
        user = WorkerUser.of(settings.worker_user, settings.worker_group)
    except ValueError as exc:
        raise ConfigError(f"invalid worker_user/worker_group: {exc}") from None
    if user is None:
        return None
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise ConfigError(
            f"worker_user = {settings.worker_user!r} needs the supervisor to start as root (it runs as "
            f"{describe_user(euid)}): only root can switch the workers to another user"
        )
    paths: list[str] = []
    if settings.task_queue and settings.task_db is not None and not is_url(settings.task_db):
        database = Path(settings.task_db).absolute()
        _own_folder(database, user)
        paths = [str(database.parent), *(str(database) + suffix for suffix in DATABASE_SUFFIXES)]
    _probe(user, paths, settings.worker_env)
    return user


def _own_folder(database: Path, user: WorkerUser) -> None:
    """The database's folder made (0700) or found to be the worker user's, with its files.

    Raises:
        ConfigError: the folder cannot be made, or it or a database file belongs to another user.
    """
    folder = database.parent
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(
            f"invalid task_db = {str(database)!r}: cannot make {folder}: {exc.strerror}"
        ) from None
    else:  # ours, just made: give it away without following a link someone could have put there since
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchown(descriptor, user.uid, user.gid)
        finally:
            os.close(descriptor)
    for path in (folder, *(Path(str(database) + suffix) for suffix in DATABASE_SUFFIXES)):
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        if info.st_uid != user.uid or (path == folder and not stat.S_ISDIR(info.st_mode)):
            what = "its folder" if path == folder else "the file"
            raise ConfigError(
                f"invalid task_db = {str(database)!r}: {what} {path} belongs to {describe_user(info.st_uid)}, "
                f"not to worker_user {user.name}, who runs the task queue (the queue worker creates the "
                "database's files in its folder); make the folder that user's, mode 0700"
            )


def _probe(user: WorkerUser, paths: list[str], worker_env: tuple[str, ...]) -> None:
    """Run ``shared.worker.probe`` as ``user`` in the workers' environment and working directory.

    Raises:
        ConfigError: the probe could not run, or found a path closed to the user.
    """
    command = [sys.executable, "-m", "shared.worker.probe", *paths]
    try:
        done = subprocess.run(
            command,
            user=user.uid,
            group=user.gid,
            extra_groups=os.getgrouplist(user.name, user.gid),
            env=worker_environment(worker_env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
    except OSError as exc:
        real = os.path.realpath(sys.executable)
        shown = sys.executable if real == sys.executable else f"{sys.executable} ({real})"
        raise ConfigError(
            f"worker_user {user.name} cannot run the interpreter {shown}: {exc.strerror} "
            "(every folder on its path must be open to that user)"
        ) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(
            f"worker_user {user.name}: the start-up probe took over {PROBE_TIMEOUT:g} s"
        ) from None
    if done.returncode == 0:
        return
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == EXIT_UNUSABLE and lines:
        raise ConfigError(f"worker_user {user.name} cannot use {lines[0]}")
    detail = lines[-1] if lines else f"exit code {done.returncode}"
    raise ConfigError(
        f"worker_user {user.name} cannot run the workers' Python (a folder of the interpreter, its library "
        f"or this package is closed to that user): {detail}"
    )
