"""``RecentErrors``: the bounded ring of the last call failures and worker deaths (``/status``,
``recent_errors``; the ``/ui`` page's "last errors")."""

from __future__ import annotations

from supervisor.recent_errors import MESSAGE_CHARS, RecentErrors, one_line, result_message


def test_the_ring_keeps_the_newest_entries_newest_first_with_a_growing_seq() -> None:
    now = [1000.0]
    ring = RecentErrors(capacity=3, clock=lambda: now[0])
    for n in range(5):
        now[0] += 1
        ring.call_failed("asyncio-0", 10, f"tool{n}", f"failure {n}")
    ring.worker_exited("trio-0", 11, "killed by SIGKILL after 2.0 s")
    entries = ring.entries()
    assert [e["seq"] for e in entries] == [6, 5, 4]
    assert entries[0] == {
        "seq": 6,
        "at": 1005.0,
        "kind": "exit",
        "worker": "trio-0",
        "pid": 11,
        "tool": None,
        "message": "killed by SIGKILL after 2.0 s",
    }
    assert [e["tool"] for e in entries[1:]] == ["tool4", "tool3"]


def test_entries_are_copies() -> None:
    ring = RecentErrors()
    ring.call_failed("asyncio-0", 10, "echo", "boom")
    ring.entries()[0]["message"] = "changed"
    assert ring.entries()[0]["message"] == "boom"


def test_the_supervisors_own_polls_are_not_noted() -> None:
    ring = RecentErrors()
    ring.call_failed("trio-queue-0", 12, "tasks:stats", "the engine is not serving")
    assert ring.entries() == []


def test_a_message_is_one_line_and_bounded() -> None:
    assert (
        one_line("\n  Traceback (most recent call last):\n  File ...") == "Traceback (most recent call last):"
    )
    cut = one_line("x" * 1000)
    assert len(cut) == MESSAGE_CHARS and cut.endswith("…")
    assert one_line("") == ""


def test_the_message_of_an_error_result_is_its_first_text_block() -> None:
    assert (
        result_message({"content": [{"type": "image"}, {"type": "text", "text": "no"}], "isError": True})
        == "no"
    )
    assert "without text" in result_message({"content": [], "isError": True})
