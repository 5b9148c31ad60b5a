"""Unit tests of supervisor/inflight.py: the one sweeper that cancels calls past their backstop."""

from __future__ import annotations

import asyncio

import pytest

from supervisor import inflight
from supervisor.inflight import Backstop, serve_sweeper
from tests.supervisor.fakes import WAIT

pytestmark = pytest.mark.anyio


async def test_the_sweeper_cancels_the_calls_past_their_backstop_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inflight, "SWEEP_INTERVAL", 0.001)
    loop = asyncio.get_running_loop()
    forever = asyncio.Event()
    late = asyncio.create_task(forever.wait())
    in_time = asyncio.create_task(forever.wait())
    due, not_due = Backstop(late, loop.time()), Backstop(in_time, loop.time() + 3600)
    sweeper = asyncio.create_task(serve_sweeper({due, not_due}))
    try:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(late, WAIT)
        assert due.fired and not not_due.fired and not in_time.done()
    finally:
        sweeper.cancel()
        in_time.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sweeper
