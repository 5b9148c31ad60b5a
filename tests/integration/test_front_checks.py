"""Issue 16, "a front no client can choke": Host and Origin checked on every endpoint, not only ``/mcp``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningSupervisor, spawn_supervisor
from tests.integration.test_front_guard import TOOLS


@pytest.fixture(scope="module")
def plain() -> Iterator[RunningSupervisor]:
    running = spawn_supervisor("--tools", TOOLS, "--no-task-queue")
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/status", "/metrics", "/mcp", "/nowhere"])
def test_a_forged_host_or_origin_is_refused_on_every_endpoint(plain: RunningSupervisor, path: str) -> None:
    url = plain.base + path
    forged_host = httpx.get(url, headers={"Host": "evil.com"}, timeout=10)
    assert (forged_host.status_code, forged_host.text) == (421, "Invalid Host header")
    forged_origin = httpx.get(url, headers={"Origin": "http://evil.com"}, timeout=10)
    assert (forged_origin.status_code, forged_origin.text) == (403, "Invalid Origin header")
    allowed = httpx.get(url, headers={"Origin": f"http://127.0.0.1:{plain.port}"}, timeout=10)
    assert allowed.status_code not in (403, 421)
