"""Unit tests of supervisor/task_db.py: which database a supervisor's task queue opens."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.statedir import lock_holder, lock_path
from supervisor.task_db import choose_task_db


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    folder = tmp_path / "mcp-supervisor"
    folder.mkdir()
    return folder


def hold(database: Path, pid: int = 4242) -> int:
    fd = os.open(lock_path(database), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(fd, f"{pid}\n".encode(), 0)
    return fd


def test_each_kind_of_instance_has_its_own_default_database(state: Path) -> None:
    assert choose_task_db(None, stdio=False) == (str(state / "tasks.db"), None)
    assert choose_task_db(None, stdio=True) == (str(state / "tasks-stdio.db"), None)


def test_a_default_database_in_use_gives_way_to_the_next_free_sibling_in_one_line(state: Path) -> None:
    fds = [hold(state / "tasks.db", 100), hold(state / "tasks-2.db", 200)]
    try:
        chosen, note = choose_task_db(None, stdio=False)
    finally:
        for fd in fds:
            os.close(fd)
    assert chosen == str(state / "tasks-3.db")
    assert note == (
        f"the task queue at {state / 'tasks.db'} is in use by pid 100; this supervisor uses "
        f"{state / 'tasks-3.db'} (set task_db to choose)"
    )


def test_a_named_database_in_use_is_refused_and_a_free_one_is_kept(state: Path, tmp_path: Path) -> None:
    named = tmp_path / "mine.db"
    assert choose_task_db(str(named), stdio=True) == (str(named), None)
    fd = hold(named, 77)
    try:
        with pytest.raises(ConfigError) as refused:
            choose_task_db(str(named), stdio=False)
    finally:
        os.close(fd)
    assert (
        str(refused.value)
        == f"the task queue at {named} is in use by pid 77; use --task-db or --no-task-queue"
    )


def test_a_postgresql_url_is_taken_as_it_is_shared_on_purpose(state: Path) -> None:
    url = "postgresql://mcp@db.example.internal/tasks"
    assert choose_task_db(url, stdio=False) == (url, None)


def test_the_probe_neither_creates_nor_keeps_a_lock(tmp_path: Path) -> None:
    database = tmp_path / "tasks.db"
    assert lock_holder(database) is None and not lock_path(database).exists()
    fd = hold(database)
    os.close(fd)  # a lock file left by a queue that is gone: free
    assert lock_holder(database) is None
    again = hold(database)  # the probe did not keep a lock behind
    os.close(again)
