"""Tests of shared/worker/threads.py through ``ToolHost.run``: a cancelled sync tool that ignores its
cancellation keeps its thread, and the worker says so (issue 17).

The calls run in a real ``ThreadPoolExecutor`` of two threads on asyncio, and in Trio's threads with a
``CapacityLimiter`` of two, as the two workers run them.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import trio

from shared.metadata import ToolMetadataRegistry, tool_metadata
from shared.protocol import Call, Message, Threads
from shared.worker.host import ToolHost
from shared.worker.threads import ThreadLoad

WAIT = 5.0
release = threading.Event()
started = threading.Semaphore(0)


@pytest.fixture(autouse=True)
def stubborn_tools(global_registry_guard: ToolMetadataRegistry) -> Iterator[None]:
    @tool_metadata(runtime="asyncio")
    def ut_stubborn() -> str:
        """Ignores ``ctx.cancelled``: holds its thread until the test lets it go."""
        started.release()
        release.wait(WAIT)
        return "done"

    @tool_metadata(runtime="trio")
    def ut_trio_stubborn() -> str:
        started.release()
        release.wait(WAIT)
        return "done"

    release.clear()
    yield
    release.set()


def discard(message: Message) -> None:
    pass


class Changes:
    """A ``ThreadLoad``'s ``changed`` callback that records the snapshot at each change."""

    def __init__(self) -> None:
        self.load: ThreadLoad | None = None
        self.seen: list[Threads] = []

    def __call__(self) -> None:
        assert self.load is not None
        self.seen.append(self.load.snapshot())


def tracked(size: int) -> tuple[ThreadLoad, Changes]:
    changes = Changes()
    load = changes.load = ThreadLoad(size, changes)
    return load, changes


async def wait_started() -> None:
    assert await asyncio.to_thread(started.acquire, True, WAIT)


def test_cancelled_sync_calls_still_running_hold_their_threads_until_they_return_on_asyncio() -> None:
    host = ToolHost("asyncio-0", "asyncio", [], 1 << 20)
    host.load()
    load, changes = tracked(2)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(2) as pool:
            run_sync = functools.partial(loop.run_in_executor, pool)
            calls = [
                asyncio.create_task(
                    host.run(
                        host.prepare(Call(n, "ut_stubborn", {}, 30, None, None), discard), run_sync, load
                    )
                )
                for n in (1, 2)
            ]
            await wait_started()
            await wait_started()
            assert load.snapshot() == Threads(2, 2, {}) and changes.seen == [Threads(2, 2, {})]
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            assert load.snapshot() == Threads(2, 2, {"ut_stubborn": 2})  # the router forgot both calls
            release.set()
        assert load.snapshot() == Threads(0, 2, {})
        assert changes.seen[-1] == Threads(0, 2, {})

    asyncio.run(scenario())


def test_cancelled_sync_calls_still_running_hold_their_threads_until_they_return_on_trio() -> None:
    host = ToolHost("trio-0", "trio", [], 1 << 20)
    host.load()
    load, changes = tracked(2)
    limiter = trio.CapacityLimiter(2)
    run_sync = functools.partial(trio.to_thread.run_sync, abandon_on_cancel=True, limiter=limiter)

    async def scenario() -> None:
        async with trio.open_nursery() as nursery:
            scopes = []
            for n in (1, 2):
                scope = trio.CancelScope()
                scopes.append(scope)
                prepared = host.prepare(Call(n, "ut_trio_stubborn", {}, 30, None, None), discard)

                async def run(prepared=prepared, scope=scope) -> None:  # type: ignore[no-untyped-def]
                    with scope:
                        await host.run(prepared, run_sync, load)

                nursery.start_soon(run)
            for _ in (1, 2):
                assert await trio.to_thread.run_sync(started.acquire, True, WAIT)
            for scope in scopes:
                scope.cancel()
        assert load.snapshot() == Threads(2, 2, {"ut_trio_stubborn": 2})
        assert limiter.borrowed_tokens == 2  # Trio's pool is as full as the count says
        release.set()
        with trio.fail_after(WAIT):
            while load.snapshot().busy:
                await trio.sleep(0.01)
        assert changes.seen[-1] == Threads(0, 2, {})

    trio.run(scenario)
