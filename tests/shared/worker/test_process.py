"""Tests of shared/worker/process.py: what a worker process does before it serves.

``die_with_parent`` asks Linux to kill the calling process with its parent, so it runs in a child
interpreter here, never in the test process; so does ``run_worker``, which freezes the heap.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from shared.launch import EXIT_ORPHANED
from shared.worker.process import pin_to_cpu


def run_child(statement: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True, timeout=60)


def test_a_worker_whose_parent_is_already_gone_exits_orphaned() -> None:
    child = run_child(
        "import os\nfrom shared.worker.process import die_with_parent\ndie_with_parent(os.getppid() + 1)"
    )
    assert child.returncode == EXIT_ORPHANED


def test_a_worker_whose_parent_is_there_carries_on() -> None:
    child = run_child(
        "import os\nfrom shared.worker.process import die_with_parent\ndie_with_parent(os.getppid())\nprint('on')"
    )
    assert (child.returncode, child.stdout) == (0, "on\n")


def test_a_worker_freezes_its_tool_modules_before_it_serves() -> None:
    """By the time ``serve`` runs (and sends READY), the tool module's objects are out of the collector's
    way and what the worker allocates next is not; the thresholds stay CPython's."""
    module = "tests.integration.call_tools"
    child = run_child(
        f"""
import gc, os, sys
from shared.worker.process import run_worker

def walked(obj):
    return any(o is obj for o in gc.get_objects())

def serve(options, host, socket):
    later = [None]
    print(gc.get_freeze_count() > 0, walked(sys.modules[{module!r}].__dict__), walked(later), gc.get_threshold())
    socket.close(linger=0)
    return 0

sys.argv = ["asyncio_worker", "--worker-id", "asyncio-0", "--router", "ipc:///nonexistent",
            "--parent-pid", str(os.getppid()), "--tools", {module!r}]
run_worker("asyncio", serve)
"""
    )
    assert (child.returncode, child.stdout) == (0, "True False True (700, 10, 10)\n"), child.stderr


def test_pinning_to_a_core_that_does_not_exist_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "mcp_supervisor.worker"):
        pin_to_cpu(1_000_000)
    assert "cannot pin to cpu 1000000" in caplog.text
