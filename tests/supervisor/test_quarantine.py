"""The quarantine's bookkeeping (``supervisor/quarantine.py``) on a fake clock: which tools a death is
counted against, when a tool is quarantined, the bystanders it must not catch, the refusal, the end of a
quarantine by expiry or release (issue 17, section 2)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from shared.errors import ToolQuarantinedError, is_quarantine_refusal
from shared.protocol import Threads
from supervisor.inflight import PendingCall
from supervisor.links import WorkerLink
from supervisor.quarantine import Quarantine, QuarantinePolicy, suspects

WALL = 1_750_000_000.0


class Book:
    """A ``Quarantine`` on a fake monotonic clock (``now``) and wall clock, with the calls each tool's
    workers answered (``answered``) and every ``on_change`` it made (``changes``)."""

    def __init__(self, **policy: Any) -> None:
        self.now = 100.0
        self.answered: Counter[str] = Counter()
        self.changes: list[frozenset[str]] = []
        self.book = Quarantine(
            QuarantinePolicy(**policy),
            lambda tool: self.answered[tool],
            clock=lambda: self.now,
            wall=lambda: WALL + self.now,
        )
        self.book.on_change = self.changes.append

    def die(self, *tools: str, after: float = 1.0) -> list[str]:
        """A worker of ``asyncio`` dies ``after`` seconds from the last event with ``tools`` in flight."""
        self.now += after
        return self.book.record_death("asyncio", tools)


def test_the_third_death_with_a_tool_in_flight_quarantines_it_and_its_calls_get_one_clear_line() -> None:
    b = Book(deaths=3, window=60.0, seconds=300.0)
    assert b.die("crash") == [] and b.die("crash") == []
    assert b.book.refusal("crash") is None and b.book.deaths_of("crash") == 2
    assert b.die("crash") == ["crash"]
    assert b.changes == [frozenset({"crash"})]
    b.now += 12.5
    refused = b.book.refusal("crash")
    assert isinstance(refused, ToolQuarantinedError)
    assert str(refused) == (
        "tool 'crash' is quarantined: its worker died 3 times within 60 s while running it; "
        "it will be tried again in 288 s (at 2025-06-15T15:13:23Z)"
    )
    assert is_quarantine_refusal(str(refused))
    assert not is_quarantine_refusal(f"tool 'crash' failed: {refused}")  # a tool's own error, quoting it
    assert b.book.refusal("other") is None
    assert b.book.documents() == [
        {
            "tool": "crash",
            "pool": "asyncio",
            "deaths": 3,
            "since": WALL + 103.0,
            "until": WALL + 403.0,
            "retry_in_seconds": 287.5,
        }
    ]
    assert b.book.totals == {"crash": 1}
    assert b.book.deaths_of("crash") == 0  # the conviction consumed its deaths


def test_deaths_older_than_the_window_are_forgotten() -> None:
    b = Book(deaths=3, window=60.0)
    b.die("crash")
    b.die("crash", after=30.0)
    assert b.die("crash", after=31.0) == []  # the first left the window a second ago
    assert b.book.deaths_of("crash") == 2
    assert b.die("crash", after=1.0) == ["crash"]


def test_a_bystander_in_flight_at_some_of_the_deaths_is_not_quarantined_and_keeps_no_blame() -> None:
    b = Book(deaths=3)
    b.die("crash", "slow")
    b.die("crash")
    assert b.die("crash", "slow") == ["crash"]
    assert b.book.deaths_of("slow") == 0  # both deaths were explained by the culprit
    assert b.die("slow") == [] and b.die("slow") == []  # so two more do not make three


def test_a_bystander_in_flight_at_every_death_is_cleared_when_it_answered_calls_in_between() -> None:
    """The culprit crashes its worker on every call, so it never answers; a long-running tool that was
    in flight each time did finish calls between the deaths."""
    b = Book(deaths=3)
    b.answered["slow"] = 7  # before the first death: not evidence
    for _ in range(3):
        b.answered["slow"] += 2
        convicted = b.die("crash", "slow")
    assert convicted == ["crash"]
    assert set(b.book.active) == {"crash"} and b.book.deaths_of("slow") == 0


@pytest.mark.parametrize("both_answered", [True, False], ids=["both-answered", "neither-answered"])
def test_tools_always_in_flight_together_that_the_evidence_cannot_separate_are_both_quarantined(
    both_answered: bool,
) -> None:
    b = Book(deaths=3)
    for _ in range(3):
        if both_answered:
            b.answered.update(["a", "b"])
        convicted = b.die("a", "b")
    assert convicted == ["a", "b"]
    assert b.changes == [frozenset({"a", "b"})]


def test_a_tool_that_only_sometimes_crashes_its_worker_is_quarantined_all_the_same() -> None:
    b = Book(deaths=3)
    for _ in range(3):
        b.answered["flaky"] += 1  # one call in two answers
        convicted = b.die("flaky")
    assert convicted == ["flaky"]


def test_the_quarantine_ends_by_itself_and_the_tool_is_listed_again() -> None:
    b = Book(deaths=1, seconds=300.0)
    b.die("crash")
    b.now += 299.0
    assert b.book.refusal("crash") is not None
    b.now += 1.0
    assert b.book.refusal("crash") is None
    assert b.book.active == {} and b.book.documents() == []
    assert b.changes == [frozenset({"crash"}), frozenset()]


def test_release_lifts_the_quarantine_and_clears_the_count_but_never_the_total() -> None:
    b = Book(deaths=2)
    b.die("crash")
    b.die("crash")
    b.die("crash")  # counted while quarantined? no: it cannot run, and a death of it adds nothing
    released = b.book.release("crash")
    assert released is not None and released.tool == "crash" and released.deaths == 2
    assert b.book.refusal("crash") is None and b.book.deaths_of("crash") == 0
    assert b.changes == [frozenset({"crash"}), frozenset()]
    assert b.book.release("crash") is None and b.book.release("never") is None  # nothing to release
    assert len(b.changes) == 2
    b.die("crash")
    assert b.die("crash") == ["crash"]  # a clean count: two fresh deaths, as the policy says
    assert b.book.totals == {"crash": 2}  # a counter: never down


def test_a_policy_of_zero_deaths_never_quarantines() -> None:
    b = Book(deaths=0)
    for _ in range(10):
        assert b.die("crash") == []
    assert b.book.active == {} and b.changes == []


def test_a_new_policy_applies_from_the_next_death_and_leaves_running_quarantines_alone() -> None:
    b = Book(deaths=2, seconds=300.0)
    b.die("a")
    b.die("a")
    b.book.policy = QuarantinePolicy(deaths=1, window=60.0, seconds=10.0)
    assert b.die("b") == ["b"]
    assert {d["tool"]: d["retry_in_seconds"] for d in b.book.documents()} == {"a": 299.0, "b": 10.0}


def test_suspects_are_the_tools_in_flight_and_the_cancelled_sync_calls_still_holding_a_thread() -> None:
    loop = asyncio.new_event_loop()
    try:
        link = WorkerLink("asyncio-0", "asyncio", 1, b"asyncio-0/1", [], [])
        pending = {
            call_id: PendingCall(call_id, ref, link, loop)
            for call_id, ref in [(1, "crash"), (2, "crash"), (3, "resource:file:///x"), (4, "echo")]
        }
        link.in_flight = {1, 2, 3, 4, 99}  # 99: answered a moment ago, gone from the table
        link.set_threads(Threads(8, 8, {"stubborn": 2}))
        assert suspects(link, pending) == {"crash", "echo", "stubborn"}
        link.in_flight = {3}
        link.set_threads(Threads(0, 8, {}))
        assert suspects(link, pending) == frozenset()  # a resource read is not a tool call
    finally:
        loop.close()


@pytest.mark.anyio
async def test_on_a_running_loop_the_quarantine_ends_without_anyone_asking() -> None:
    """The timer on the loop lifts it, so that the tool is listed again (list_changed) even when nobody
    calls it. A short quarantine on the real clock; the wait is for the change itself."""
    book = Quarantine(QuarantinePolicy(deaths=1, seconds=0.05))
    ended = asyncio.Event()
    book.on_change = lambda tools: ended.set() if not tools else None
    assert book.record_death("trio", ["crash"]) == ["crash"]
    await asyncio.wait_for(ended.wait(), 5.0)
    assert book.active == {}
    book.close()
    book.close()  # idempotent


def test_a_single_death_reads_once_and_is_still_recognised_as_a_refusal() -> None:
    b = Book(deaths=1)
    b.die("crash")
    refused = b.book.refusal("crash")
    assert refused is not None and "its worker died once within 60 s" in str(refused)
    assert is_quarantine_refusal(str(refused))
