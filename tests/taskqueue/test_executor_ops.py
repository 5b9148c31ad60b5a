"""The executor tools against a fake executor (``executor_ops.py``): a registration narrows a worker
process, unregistering restores it."""

from __future__ import annotations

import pytest

from trio_worker.taskqueue.errors import (
    NotFoundError,
)

from .conftest import Target, serving, wait_status
from .fakes import FakeExecutor

pytestmark = pytest.mark.anyio


async def test_a_registration_narrows_a_worker_process_and_unregistering_restores_it(
    database: Target, fake: FakeExecutor
) -> None:
    async with serving(database, fake) as engine:
        narrowed = await engine.worker_register("fake-0", capabilities=["echo"], max_concurrent_tasks=2)
        assert narrowed["live"] and narrowed["capabilities"] == ["echo"]
        answer = await engine.task_submit("add", {"a": 1, "b": 2})
        assert answer["status"] == "queued" and "no live executor can run 'add'" in answer["waiting_reason"]
        removed = await engine.worker_unregister("fake-0")
        assert removed["still_live"] is True
        await wait_status(engine, answer["task_id"], "completed")
        with pytest.raises(NotFoundError, match=r"worker process of the supervisor"):
            await engine.worker_unregister("fake-0")
        with pytest.raises(NotFoundError, match=r"^worker_id: no executor 'ghost'"):
            await engine.worker_status("ghost")
