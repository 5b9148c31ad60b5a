"""An in-memory ``Executor`` for the engine's tests: tools with real JSON schemas, durations the test
controls with Trio events, progress reports, failures, timeouts and cancellation the test can observe."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from trio_worker.taskqueue import ToolCallRefused
from trio_worker.taskqueue.executor import ProgressCallback

Handler = Callable[["FakeCall"], Awaitable[dict[str, Any]]]


def ok(value: Any) -> dict[str, Any]:
    """A successful CallToolResult: structured content for objects, text otherwise."""
    if isinstance(value, dict):
        return {
            "content": [{"type": "text", "text": json.dumps(value)}],
            "structuredContent": value,
            "isError": False,
        }
    return {"content": [{"type": "text", "text": str(value)}], "isError": False}


def error(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


@dataclass(eq=False)
class FakeCall:
    """One call the engine made."""

    number: int
    name: str
    arguments: dict[str, Any]
    timeout: float | None
    on_progress: ProgressCallback
    executor: FakeExecutor
    task_input: dict[str, Any] | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    outcome: str = "running"  # running, cleaning up, returned, timed out, cancelled

    @property
    def key(self) -> str:
        return str(self.arguments.get("key", self.name))


def schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required or [],
        "additionalProperties": False,
    }


@dataclass
class FakeExecutor:
    """Tools by name, one or more fake worker processes, and a record of every call."""

    catalog: dict[str, dict[str, Any]] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    worker_list: list[dict[str, Any]] = field(default_factory=list)
    calls: list[FakeCall] = field(default_factory=list)
    gates: dict[str, trio.Event] = field(default_factory=dict)
    started_events: dict[str, trio.Event] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    most_concurrent: dict[str, int] = field(default_factory=dict)
    tools_calls: int = 0
    _numbers: Any = field(default_factory=lambda: itertools.count(1))

    # -- set-up --

    def tool(
        self,
        name: str,
        input_schema: dict[str, Any],
        handler: Handler,
        *,
        retry_policy: str = "none",
        served: bool = True,
    ) -> None:
        self.catalog[name] = {
            "name": name,
            "description": name,
            "inputSchema": input_schema,
            "runtime": "trio",
            "metadata": {"name": name, "retry_policy": retry_policy},
        }
        self.handlers[name] = handler
        if served:
            for worker in self.worker_list:
                worker["tools"].append(name)

    def add_worker(self, worker_id: str, tools: list[str], *, state: str = "ready") -> None:
        self.worker_list.append(
            {
                "id": worker_id,
                "runtime": "trio",
                "pid": 1000 + len(self.worker_list),
                "state": state,
                "tools": list(tools),
                "in_flight": 0,
            }
        )

    def gate(self, key: str) -> trio.Event:
        """The event a ``gate``/``progress`` call with this key waits for."""
        return self.gates.setdefault(key, trio.Event())

    def release(self, key: str) -> None:
        self.gate(key).set()

    async def wait_started(self, key: str) -> FakeCall:
        """Wait until a call with this key has started; return the latest such call."""
        event = self.started_events.setdefault(key, trio.Event())
        await event.wait()
        return [call for call in self.calls if call.key == key][-1]

    def calls_of(self, key: str) -> list[FakeCall]:
        return [call for call in self.calls if call.key == key]

    # -- the Executor protocol --

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any],
        *,
        timeout: float | None,
        on_progress: ProgressCallback,
        task_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        if name not in self.handlers:
            raise ToolCallRefused(f"unknown tool {name!r}")
        call = FakeCall(next(self._numbers), name, dict(arguments), timeout, on_progress, self, task_input)
        call.started_at = trio.current_time()
        self.calls.append(call)
        self.running[call.key] = self.running.get(call.key, 0) + 1
        total = sum(self.running.values())
        self.most_concurrent["*"] = max(self.most_concurrent.get("*", 0), total)
        self.most_concurrent[call.key] = max(self.most_concurrent.get(call.key, 0), self.running[call.key])
        for worker in self.worker_list:
            if name in worker["tools"]:
                worker["in_flight"] += 1
                break
        self.started_events.setdefault(call.key, trio.Event()).set()
        try:
            with trio.move_on_after(math.inf if timeout is None else timeout) as deadline:
                result = await self.handlers[name](call)
                call.outcome = "returned"
                return result
            call.outcome = "timed out"
            assert deadline.cancelled_caught
            return error(f"tool {name!r} timed out after {timeout:g} s")
        except trio.Cancelled:
            call.outcome = "cancelled"
            raise
        finally:
            call.ended_at = trio.current_time()
            self.running[call.key] -= 1
            for worker in self.worker_list:
                if name in worker["tools"] and worker["in_flight"] > 0:
                    worker["in_flight"] -= 1
                    break

    async def tools(self) -> dict[str, dict[str, Any]]:
        self.tools_calls += 1
        return {name: dict(entry) for name, entry in self.catalog.items()}

    async def workers(self) -> list[dict[str, Any]]:
        return [dict(worker, tools=list(worker["tools"])) for worker in self.worker_list]


def standard_executor() -> FakeExecutor:
    """One worker process ``fake-0`` serving the standard test tools."""
    fake = FakeExecutor()
    fake.add_worker("fake-0", [])

    async def echo(call: FakeCall) -> dict[str, Any]:
        return ok({"message": call.arguments["message"]})

    async def add(call: FakeCall) -> dict[str, Any]:
        return ok({"sum": call.arguments["a"] + call.arguments["b"]})

    async def text(call: FakeCall) -> dict[str, Any]:
        return ok(str(call.arguments.get("text", "")))

    async def gate(call: FakeCall) -> dict[str, Any]:
        await call.executor.gate(call.key).wait()
        return ok({"key": call.key, "value": call.arguments.get("value")})

    async def flaky(call: FakeCall) -> dict[str, Any]:
        seen = call.executor.failures.get(call.key, 0)
        if seen < call.arguments["failures"]:
            call.executor.failures[call.key] = seen + 1
            return error(f"tool 'flaky' failed: RuntimeError: boom {seen + 1}")
        return ok({"key": call.key, "attempt": seen + 1})

    async def forever(call: FakeCall) -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def progress(call: FakeCall) -> dict[str, Any]:
        call.on_progress(1, 4, "one quarter")
        await call.executor.gate(call.key).wait()
        call.on_progress(3, 4, "three quarters")
        await call.executor.gate(call.key + ":end").wait()
        return ok({"key": call.key})

    async def slow_cleanup(call: FakeCall) -> dict[str, Any]:
        try:
            await trio.sleep_forever()
        finally:
            call.outcome = "cleaning up"
            with trio.CancelScope(shield=True):
                await call.executor.gate(call.key + ":cleanup").wait()
        raise AssertionError("unreachable")

    async def busy(call: FakeCall) -> dict[str, Any]:
        seen = call.executor.failures.get(call.key, 0)
        if seen < call.arguments["times"]:
            call.executor.failures[call.key] = seen + 1
            return error("server busy: tool 'busy' allows 1 concurrent calls; try again later")
        return ok({"key": call.key})

    key = {"key": {"type": "string"}}
    fake.tool("echo", schema({"message": {"type": "string"}}, ["message"]), echo)
    fake.tool("add", schema({"a": {"type": "number"}, "b": {"type": "number"}}, ["a", "b"]), add)
    fake.tool("text", schema({"text": {"type": "string"}}), text)
    fake.tool("gate", schema({**key, "value": {}}, ["key"]), gate)
    fake.tool(
        "flaky", schema({**key, "failures": {"type": "integer", "minimum": 0}}, ["key", "failures"]), flaky
    )
    fake.tool("forever", schema(key), forever)
    fake.tool("progress", schema(key, ["key"]), progress)
    fake.tool("slow_cleanup", schema(key, ["key"]), slow_cleanup)
    fake.tool("busy", schema({**key, "times": {"type": "integer"}}, ["key", "times"]), busy)
    fake.tool(
        "retrying",
        schema({**key, "failures": {"type": "integer"}}, ["key", "failures"]),
        flaky,
        retry_policy="exponential",
    )
    return fake


class ManualClock:
    """A wall clock the test moves by hand (for measured durations and estimates)."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
