"""The supervisor's side of worker containment (``containment.py``), the worker's zombie janitor
(``shared.worker.confine``), their settings, and the control socket's peer check; no supervisor process."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import psutil
import pytest

from shared.errors import ConfigError
from shared.worker.confine import ZombieJanitor
from supervisor.config import MIN_DEFAULT_WORKER_RSS, Settings
from supervisor.config_load import load_settings
from supervisor.containment import DEFAULT_WORKER_ENV, env_allowed, refuse_peer, worker_environment
from supervisor.control import ControlServer, request

pytestmark = pytest.mark.anyio


def test_the_environment_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LC_TIME", "C")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("MCP_SUPERVISOR_STATE_KEYS", "k" * 40)
    monkeypatch.setenv("NOTIFY_SOCKET", "/run/notify")
    env = worker_environment((*DEFAULT_WORKER_ENV, "NOTIFY_SOCKET"))
    assert env["LC_TIME"] == "C" and env["PYTHONUNBUFFERED"] == "1"
    assert not {"AWS_SECRET_ACCESS_KEY", "MCP_SUPERVISOR_STATE_KEYS", "NOTIFY_SOCKET"} & set(env)
    assert env_allowed("XDG_RUNTIME_DIR", ("XDG_*",)) and not env_allowed("PATHS", ("PATH",))


def test_worker_env_and_rss_settings() -> None:
    assert load_settings(environ={"MCP_SUPERVISOR_WORKER_ENV": "PATH, IT_*"}).worker_env == ("PATH", "IT_*")
    with pytest.raises(ConfigError, match="invalid worker_env"):
        load_settings(environ={"MCP_SUPERVISOR_WORKER_ENV": "A*B"})
    gib = 1 << 30
    assert Settings().worker_rss_limit(24 * gib) == 24 * gib // 4 // 3  # asyncio, trio, trio-queue
    assert Settings().worker_rss_limit(gib) == MIN_DEFAULT_WORKER_RSS
    assert Settings(max_worker_rss=0).worker_rss_limit(24 * gib) == 0


def test_a_peer_of_the_supervisors_own_tree_is_refused() -> None:
    assert refuse_peer(os.getppid(), os.getuid()) is None  # not a descendant
    assert refuse_peer(os.getpid(), 4242) is not None and "uid 4242" in str(refuse_peer(os.getpid(), 4242))


async def test_the_control_socket_answers_a_refused_peer_with_the_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def status(request: dict[str, Any]) -> Any:
        return "served"

    with tempfile.TemporaryDirectory(prefix="ctl-") as directory:
        path = Path(directory) / "control.sock"
        peers: list[tuple[int, int]] = []

        def refuse(pid: int, uid: int) -> str | None:
            peers.append((pid, uid))
            return "not you"

        server = ControlServer(path, {"status": status}, refuse=refuse)
        await server.start()
        try:
            with caplog.at_level(logging.WARNING, "mcp_supervisor.control"):
                answer = await asyncio.to_thread(request, path, {"command": "status"})
        finally:
            await server.aclose()
    assert answer == {"ok": False, "error": "refused: not you"}
    assert peers == [(os.getpid(), os.getuid())]
    assert "control connection refused: not you" in caplog.text


class FakeChild:
    def __init__(self, pid: int, ppid: int, status: str) -> None:
        self.pid, self._ppid, self._status = pid, ppid, status

    def ppid(self) -> int:
        return self._ppid

    def status(self) -> str:
        return self._status


class FakeMe:
    pid = 100

    def __init__(self) -> None:
        self.tree: list[FakeChild] = []

    def children(self, recursive: bool = False) -> list[FakeChild]:
        return self.tree


def test_the_janitor_reaps_adopted_zombies_at_once_and_unclaimed_ones_late(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reaped: list[int] = []
    monkeypatch.setattr(os, "waitpid", lambda pid, options: reaped.append(pid) or (pid, 0))
    me, janitor = FakeMe(), ZombieJanitor()
    me.tree = [FakeChild(7, 6, psutil.STATUS_SLEEPING), FakeChild(8, 100, psutil.STATUS_SLEEPING)]
    assert janitor.sweep(me, 0.0) == []  # type: ignore[arg-type]
    # 7's parent exited: adopted, then a zombie; 8 is the tool's own child, exited and not yet waited for
    me.tree = [FakeChild(7, 100, psutil.STATUS_ZOMBIE), FakeChild(8, 100, psutil.STATUS_ZOMBIE)]
    assert janitor.sweep(me, 5.0) == [7]  # type: ignore[arg-type]
    me.tree = [FakeChild(8, 100, psutil.STATUS_ZOMBIE)]
    assert janitor.sweep(me, 10.0) == []  # type: ignore[arg-type]
    assert janitor.sweep(me, 305.0) == [8]  # type: ignore[arg-type]
    assert reaped == [7, 8]
