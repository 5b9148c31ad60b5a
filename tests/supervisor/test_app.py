"""The supervisor composed in this process, without starting it: which signal asks for what, and the HTTP
app it serves (driven through ``httpx.ASGITransport``: no socket, no worker)."""

from __future__ import annotations

import signal
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from supervisor.app import STOP_SIGNALS, Supervisor, install_signal_handlers
from supervisor.config_load import load_settings
from supervisor.connections import ConnectionTable
from supervisor.draining import STOP_WAIT
from supervisor.http_serving import FRONT_LINGER, http_server

pytestmark = pytest.mark.anyio


class RecordingLoop:
    """Stands in for the event loop: remembers ``add_signal_handler`` calls."""

    def __init__(self) -> None:
        self.handlers: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        self.handlers[sig] = (callback, args)

    def deliver(self, sig: int) -> None:
        callback, args = self.handlers[sig]
        callback(*args)


def test_sigint_asks_for_the_same_graceful_stop_as_sigterm() -> None:
    loop = RecordingLoop()
    stops: list[str] = []
    reloads: list[None] = []
    install_signal_handlers(loop, stops.append, lambda: reloads.append(None))
    assert set(STOP_SIGNALS) == {signal.SIGTERM, signal.SIGINT}
    loop.deliver(signal.SIGTERM)
    loop.deliver(signal.SIGINT)
    assert stops == ["SIGTERM", "SIGINT"] and reloads == []
    assert loop.handlers[signal.SIGTERM][0] is loop.handlers[signal.SIGINT][0]
    loop.deliver(signal.SIGHUP)
    assert stops == ["SIGTERM", "SIGINT"] and reloads == [None]


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short private directory for the supervisor's sockets (a unix socket path has 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="app-") as path:
        yield Path(path) / "run"


@asynccontextmanager
async def http_client(environ: dict[str, str], runtime_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app ``Supervisor.run_http`` would serve, with settings from ``environ``."""
    settings = load_settings(environ=environ, overrides={"runtime_dir": runtime_dir})
    supervisor = Supervisor(settings, "test")
    try:
        transport = httpx.ASGITransport(app=supervisor.http_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8001") as client:
            yield client
    finally:
        await supervisor.router.aclose()
        supervisor.runtime_dir.cleanup()


async def test_metrics_can_be_turned_off(runtime_dir: Path) -> None:
    async with http_client({"MCP_SUPERVISOR_ENABLE_METRICS": "false"}, runtime_dir) as client:
        assert (await client.get("/metrics")).status_code == 404
        assert (await client.get("/healthz")).json() == {"status": "ok"}  # the rest is served


async def test_metrics_are_served_by_default(runtime_dir: Path) -> None:
    async with http_client({}, runtime_dir) as client:
        await client.get("/healthz")
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'mcp_supervisor_http_requests_total{method="GET",path="/healthz",status="200"} 1.0' in metrics.text
    assert 'mcp_supervisor_worker_ready{runtime="trio",worker="trio-0"} 0.0' in metrics.text


async def test_no_openapi_document_or_docs_pages_are_served(runtime_dir: Path) -> None:
    """Not part of the product; the schema would be built, and kept, at the first request."""
    async with http_client({}, runtime_dir) as client:
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/healthz")).json() == {"status": "ok"}


def test_uvicorn_never_cancels_a_call_before_the_supervisors_own_stop_decides() -> None:
    # Supervisor._finish drains the calls for shutdown_grace, STOPs (then kills) the workers and lets the
    # front linger; only then is what is left on the front cancelled. uvicorn's own graceful timeout
    # running out first would cancel a call the arbiter is still counting, making a forced stop look clean.
    settings = load_settings(overrides={"shutdown_grace": 0.5})
    server = http_server(lambda scope, receive, send: None, settings, ConnectionTable(10, 10))  # type: ignore[arg-type, return-value]
    assert server.config.timeout_graceful_shutdown >= 0.5 + 2 * STOP_WAIT + 2 * FRONT_LINGER
