"""trio_worker/queue_service.py: the executor sends a protocol task's input with the call and keeps a
refusal's code and data; the change forwarder sends changes in the background and drops them when full."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from shared.errors import INVALID_PARAMS, ClientRequestError
from trio_worker.queue_service import ChangeForwarder, RouterExecutor
from trio_worker.taskqueue import ToolCallRefused

pytestmark = pytest.mark.anyio


class FakeWorker:
    def __init__(self, refuse: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.refuse = refuse
        self.gate = trio.Event()

    async def request(self, call_id: int, method: str, params: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self.requests.append((method, params))
        if self.refuse:
            raise ClientRequestError("bad arguments", INVALID_PARAMS, {"field": "x"})
        if method == "supervisor/task_changed":
            await self.gate.wait()
        return {"content": [], "isError": False}


async def test_a_protocol_run_sends_its_task_input_and_a_refusal_keeps_code_and_data() -> None:
    worker = FakeWorker()
    executor = RouterExecutor(worker)  # type: ignore[arg-type]
    task = {"client": {"capabilities": {}}, "answers": {}}
    await executor.call_tool("t", {"a": 1}, timeout=None, on_progress=lambda *a: None, task_input=task)
    await executor.call_tool("t", {}, timeout=2.0, on_progress=lambda *a: None)
    assert worker.requests[0] == (
        "tools/call",
        {"name": "t", "arguments": {"a": 1}, "timeout": None, "task": task},
    )
    assert "task" not in worker.requests[1][1]
    refusing = RouterExecutor(FakeWorker(refuse=True))  # type: ignore[arg-type]
    with pytest.raises(ToolCallRefused) as caught:
        await refusing.call_tool("t", {}, timeout=None, on_progress=lambda *a: None)
    assert (caught.value.code, caught.value.data) == (INVALID_PARAMS, {"field": "x"})


async def test_the_forwarder_sends_in_the_background_and_drops_beyond_its_buffer() -> None:
    worker = FakeWorker()
    forwarder = ChangeForwarder(worker, size=2)  # type: ignore[arg-type]
    with trio.fail_after(5):
        await _forward(worker, forwarder)
    assert [params["task"]["taskId"] for _, params in worker.requests] == ["1", "2", "3"]
    assert worker.requests[0][0] == "supervisor/task_changed"


async def _forward(worker: FakeWorker, forwarder: ChangeForwarder) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(forwarder.serve)
        forwarder({"taskId": "1"})
        while not worker.requests:
            await trio.sleep(0)
        for n in range(2, 6):
            forwarder({"taskId": str(n)})  # never blocks: one is being sent, two wait, two are dropped
        assert forwarder.dropped == 2
        worker.gate.set()
        while len(worker.requests) < 3:
            await trio.sleep(0)
        nursery.cancel_scope.cancel()
