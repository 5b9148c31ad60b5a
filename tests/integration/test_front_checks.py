"""Issue 16, "a front no client can choke": Host and Origin checked on every endpoint, not only ``/mcp``,
and a lone surrogate in a JSON body answered as a parse error on both paths, without a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import RunningSupervisor, spawn_supervisor
from tests.integration.test_front_guard import MODERN_HEADERS, TOOLS, echo, echo_body


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


@pytest.fixture(scope="module", params=["fast path", "SDK path"])
def either_path(request: pytest.FixtureRequest) -> Iterator[RunningSupervisor]:
    env = {} if request.param == "fast path" else {"MCP_SUPERVISOR_FAST_PATH": "false"}
    running = spawn_supervisor("--tools", TOOLS, "--no-task-queue", env=env)
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize(
    "body",
    [
        echo_body("\ud800"),  # json.dumps writes the escape \ud800
        echo_body("x").replace(
            b'"x"', b'"\xed\xa0\x80"'
        ),  # the bytes of a surrogate, as Python's json reads them
        json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"\udfff": 1}}).encode(),
    ],
    ids=["escaped", "raw bytes", "in a key"],
)
def test_a_lone_surrogate_is_a_parse_error_without_a_traceback(
    either_path: RunningSupervisor, body: bytes
) -> None:
    response = httpx.post(either_path.url, content=body, headers=MODERN_HEADERS, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700
    assert echo(either_path).status_code == 200
    assert "Traceback" not in either_path.log()
