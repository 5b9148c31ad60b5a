"""The notify protocol on a datagram socket the test owns, path and abstract address alike."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from supervisor.systemd import Notifier


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        receiver.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert notifier.enabled and notifier.watchdog_interval == 1.0
        notifier.ready("serving 6 tools")
        notifier.reloading()
        notifier.stopping()
        assert receiver.recv(1024).decode().splitlines() == ["READY=1", "STATUS=serving 6 tools"]
        reloading = receiver.recv(1024).decode().splitlines()
        assert reloading[0] == "RELOADING=1" and reloading[1].startswith("MONOTONIC_USEC=")
        assert receiver.recv(1024) == b"STOPPING=1"
        notifier.close()


def test_abstract_socket_name() -> None:
    name = f"mcp-supervisor-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        notifier.watchdog()
        notifier.close()
        assert receiver.recv(1024) == b"WATCHDOG=1"


def test_without_systemd_nothing_happens_and_nothing_raises() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_interval is None
    notifier.ready("x")  # a no-op


def test_watchdog_for_another_pid_is_not_ours(tmp_path: Path) -> None:
    notifier = Notifier(
        {"NOTIFY_SOCKET": str(tmp_path / "n"), "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}
    )
    assert notifier.watchdog_interval is None


def test_an_unreachable_socket_is_reported_once_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    notifier.ready("x")
    notifier.watchdog()  # still no exception
    notifier.close()
    assert len([r for r in caplog.records if "cannot notify systemd" in r.getMessage()]) == 1
