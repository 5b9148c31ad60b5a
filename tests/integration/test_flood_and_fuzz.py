"""Abuse from the outside: a flood far past capacity, and fuzzed request bodies. Loopback, bounded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from tests.conftest import RunningSupervisor, spawn_supervisor

HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
ANSWERS = {200, 202, 400, 404, 405, 406, 413, 415, 422}
"""What a request may get: a JSON-RPC answer, or an HTTP error that says what is wrong (never a 5xx)."""


def text(result: Any) -> str:
    return "".join(block.text for block in result.content if block.type == "text")


@pytest.mark.anyio
async def test_a_flood_gets_fast_busy_errors_with_bounded_memory(supervisor_factory: Any) -> None:
    server = supervisor_factory(
        "--tools",
        "tests.integration.call_tools",
        env={"MCP_SUPERVISOR_MAX_IN_FLIGHT_PER_WORKER": "4", "MCP_SUPERVISOR_MAX_QUEUED_CALLS": "8"},
    )
    supervisor = psutil.Process(server.pid)
    rss_before = supervisor.memory_info().rss
    outcomes: list[Any] = []
    async with Client(server.url, mode="2026-07-28") as client:
        await client.list_tools()

        async def call() -> None:
            outcomes.append(await client.call_tool("it_hold", {"seconds": 0.5}))

        with anyio.fail_after(60):
            async with anyio.create_task_group() as flood:
                for _ in range(300):
                    flood.start_soon(call)
        rss_after = supervisor.memory_info().rss
        assert text(await client.call_tool("echo", {"message": "normal again"})) == "normal again"
    busy = [o for o in outcomes if o.is_error]
    served = [o for o in outcomes if not o.is_error]
    assert len(outcomes) == 300
    assert len(served) >= 4 + 8  # at least what fits in flight and in the queue
    assert busy and all(
        text(o).startswith("server busy: every asyncio worker has 4 calls in flight") for o in busy
    )
    assert rss_after - rss_before < 100 * 1024 * 1024
    assert server.get("/healthz").status_code == 200


@pytest.fixture(scope="module")
def server() -> Iterator[RunningSupervisor]:
    running = spawn_supervisor(
        "--tools", "tests.integration.call_tools", env={"MCP_SUPERVISOR_MAX_BODY_SIZE": "65536"}
    )
    yield running
    assert running.stop() == 0


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
methods = st.sampled_from(
    ["initialize", "tools/list", "tools/call", "ping", "nope", "", "notifications/initialized"]
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "id": st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=30) | json_values,
        "method": methods | json_values,
        "params": st.fixed_dictionaries(
            {},
            optional={
                "name": st.sampled_from(["echo", "it_hold", "nope"]) | json_values,
                "arguments": json_values,
            },
        )
        | json_values,
    },
)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


raw_bodies = st.one_of(
    envelopes.map(json.dumps),
    st.lists(envelopes, max_size=3).map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.integers(min_value=1, max_value=5000).map(nested),
    st.integers(min_value=65537, max_value=200_000).map(
        lambda n: json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "a" * n})
    ),
)


# Ten bodies per example of the Hypothesis profile (tests/conftest.py): 2,000 under ci, 250 by default.
@settings(
    max_examples=10 * settings.default.max_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
@given(body=raw_bodies, version=st.sampled_from([None, "2025-11-25", "2026-07-28", "garbage"]))
def test_fuzzed_bodies_get_proper_errors_and_the_server_stays_up(
    server: RunningSupervisor, http: httpx.Client, body: str, version: str | None
) -> None:
    headers = dict(HEADERS)
    if version is not None:
        headers["MCP-Protocol-Version"] = version
    response = http.post(server.url, content=body.encode("utf-8", "surrogatepass"), headers=headers)
    assert response.status_code in ANSWERS, (response.status_code, response.text[:300])
    assert server.process.poll() is None


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def test_the_server_is_healthy_after_the_fuzzing(server: RunningSupervisor) -> None:
    assert server.get("/healthz").status_code == 200
    assert server.get("/readyz").status_code == 200
