"""The supervisor imports only what serving needs: its resident memory is mostly its imports (80 of its
87 MB before this was pinned), so a command's or a test's library loaded at start is memory every
supervisor pays for. ``ctl`` and ``top`` import what they need when they run."""

from __future__ import annotations

from tests.shared.test_import_light import modules_loaded_by

START_UP = """
import tempfile
from supervisor.app import Supervisor
from supervisor.http_serving import http_server
from supervisor.cli import build_parser
from supervisor.config_load import load_settings

build_parser()
with tempfile.TemporaryDirectory(prefix="light-") as directory:
    settings = load_settings(environ={}, overrides={"runtime_dir": directory + "/run"})
    supervisor = Supervisor(settings, "probe")
    http_server(supervisor.http_app(), settings, supervisor.connections)
    supervisor.runtime_dir.cleanup()
"""
"""What ``python -m supervisor`` does before it serves over HTTP, short of starting workers."""
NOT_AT_START = (
    "rich",  # top's terminal rendering
    "websockets",  # MCP has no WebSocket transport
    "wsproto",
    "httpx",  # a client library: tests and benchmarks
    "trio",  # the workers' runtime
    "asyncio_worker",
    "trio_worker",
    "supervisor.ctl",
    "supervisor.top",
    "supervisor.top_render",
    "supervisor.top_rates",
    "pydantic.v1",  # FastAPI checks a route's typed parameters and response model against it
    "prometheus_client",  # imported by the first scrape of /metrics (supervisor/metrics_page.py)
    "supervisor.metrics",
    "tomllib",  # only to read a configuration file
)
"""Top-level modules and supervisor modules the supervisor must not load to serve."""


def loaded_among(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == name or m.startswith(name + ".") for name in names))


def test_the_supervisor_starts_without_the_commands_libraries_or_a_worker_runtime() -> None:
    loaded = modules_loaded_by(START_UP)
    assert "supervisor.front" in loaded and "uvicorn.protocols.http.httptools_impl" in loaded
    assert loaded_among(loaded, NOT_AT_START) == []


SERVING_STACK = ("mcp", "mcp_types", "uvicorn", "starlette", "pydantic", "zmq", "supervisor.app")
"""What serving needs and the ``ctl`` and ``top`` commands do not: they only talk to the control socket."""


SCRAPE = """
    from supervisor.http_stats import HTTPStats
    from supervisor.metrics_page import MetricsPage
    text, media_type = MetricsPage(supervisor, HTTPStats()).render()
    assert media_type.startswith("text/plain") and b"mcp_supervisor_" in text, text[:200]
    supervisor.runtime_dir.cleanup()
"""
"""What ``GET /metrics`` runs on a supervisor built as above."""


def test_the_first_scrape_loads_prometheus_client() -> None:
    """What the start-up probe must not see is what ``/metrics`` loads, so the check above can fail."""
    loaded = modules_loaded_by(START_UP.replace("    supervisor.runtime_dir.cleanup()", SCRAPE))
    assert {"prometheus_client", "supervisor.metrics"} <= set(loaded_among(loaded, NOT_AT_START))


def test_ctl_and_top_run_without_the_serving_stack() -> None:
    loaded = modules_loaded_by("import supervisor.cli, supervisor.ctl, supervisor.top")
    assert loaded_among(loaded, SERVING_STACK) == []


def test_the_probe_sees_what_top_loads() -> None:
    """``top`` does load rich once it runs, so the check above can fail."""
    loaded = modules_loaded_by("import supervisor.top")
    assert {"rich", "supervisor.top"} <= set(loaded_among(loaded, NOT_AT_START))
