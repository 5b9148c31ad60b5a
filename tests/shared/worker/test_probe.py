"""shared/worker/probe.py: what the start-up probe reports about the paths a worker needs (run here as
this test's own user; the supervisor runs it as ``worker_user``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.worker.probe import problems


def test_a_writable_folder_and_its_files_and_missing_files_are_fine(tmp_path: Path) -> None:
    (tmp_path / "tasks.db").write_bytes(b"")
    assert problems([str(tmp_path), str(tmp_path / "tasks.db"), str(tmp_path / "tasks.db-wal")]) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root passes every permission check")
def test_a_closed_folder_is_named(tmp_path: Path) -> None:
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o000)
    try:
        assert problems([str(closed / "queue")]) == [
            f"{closed / 'queue'}: {closed} cannot be searched by uid {os.getuid()}"
        ]
    finally:
        closed.chmod(0o700)
