"""supervisor/worker_user.py: what the supervisor checks and prepares before its workers drop to
``worker_user`` (the drop itself and the probe run as that user: tests/integration/test_worker_user.py)."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import sys
from pathlib import Path

import pytest

from shared.errors import ConfigError
from supervisor.config_load import load_settings
from supervisor.worker_user import WorkerUser, _own_folder, _probe, prepare

NOBODY = pwd.getpwnam("nobody")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")


def test_the_user_and_group_become_ids() -> None:
    nogroup = grp.getgrnam("nogroup").gr_gid
    assert WorkerUser.of(None, None) is None
    assert WorkerUser.of("nobody", None) == WorkerUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    assert WorkerUser.of(str(NOBODY.pw_uid), str(nogroup)) == WorkerUser("nobody", NOBODY.pw_uid, nogroup)


def test_a_supervisor_that_is_not_root_refuses_worker_user_in_one_line() -> None:
    settings = load_settings(environ={}, overrides={"worker_user": "nobody", "task_queue": False})
    with pytest.raises(ConfigError) as caught:
        prepare(settings, euid=NOBODY.pw_uid)
    assert str(caught.value) == (
        "worker_user = 'nobody' needs the supervisor to start as root (it runs as nobody (uid 65534)): only "
        "root can switch the workers to another user"
    )


def test_without_worker_user_nothing_is_prepared(tmp_path: Path) -> None:
    settings = load_settings(environ={}, overrides={"task_db": tmp_path / "q" / "tasks.db"})
    assert prepare(settings, euid=1000) is None
    assert not (tmp_path / "q").exists()


@as_root
def test_a_missing_database_folder_is_made_the_worker_user_s(tmp_path: Path) -> None:
    user = WorkerUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    _own_folder(tmp_path / "deep" / "queue" / "tasks.db", user)
    info = (tmp_path / "deep" / "queue").stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    assert (tmp_path / "deep").stat().st_uid == 0  # only the database's own folder is given away
    _own_folder(tmp_path / "deep" / "queue" / "tasks.db", user)  # an existing one of the user's: fine


@as_root
def test_a_folder_or_a_database_file_of_another_user_is_refused_not_taken(tmp_path: Path) -> None:
    user = WorkerUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    with pytest.raises(ConfigError) as caught:
        _own_folder(tmp_path / "tasks.db", user)
    assert f"its folder {tmp_path} belongs to root (uid 0), not to worker_user nobody" in str(caught.value)
    assert tmp_path.stat().st_uid == 0

    folder = tmp_path / "queue"
    _own_folder(folder / "tasks.db", user)
    (folder / "tasks.db-wal").write_bytes(b"")  # left by a supervisor that ran the queue as root
    with pytest.raises(ConfigError) as caught:
        _own_folder(folder / "tasks.db", user)
    assert f"the file {folder / 'tasks.db-wal'} belongs to root (uid 0)" in str(caught.value)
    assert (folder / "tasks.db-wal").stat().st_uid == 0


@as_root
def test_a_link_in_place_of_the_folder_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (tmp_path / "queue").symlink_to(target)
    with pytest.raises(ConfigError):
        _own_folder(tmp_path / "queue" / "tasks.db", WorkerUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid))
    assert target.stat().st_uid == 0


@as_root
def test_an_interpreter_the_worker_user_cannot_run_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hidden = tmp_path / "closed" / "python"  # tmp_path is root's, 0700
    hidden.parent.mkdir()
    hidden.symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(hidden))
    with pytest.raises(ConfigError) as caught:
        _probe(WorkerUser("nobody", NOBODY.pw_uid, NOBODY.pw_gid), [], ("PATH",))
    assert str(caught.value).startswith(f"worker_user nobody cannot run the interpreter {hidden} (")
    assert "Permission denied (every folder on its path must be open to that user)" in str(caught.value)
