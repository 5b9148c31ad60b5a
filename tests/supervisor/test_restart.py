"""The restart rules on a fake clock: backoff, its reset, flapping and the cool-down."""

from __future__ import annotations

from supervisor.restart import RestartPolicy, RestartTracker

POLICY = RestartPolicy(
    initial=0.1, maximum=1.0, reset_after=10.0, flap_deaths=5, flap_window=60.0, cooldown=30.0
)


def test_backoff_doubles_up_to_the_cap() -> None:
    tracker = RestartTracker(RestartPolicy(initial=0.1, maximum=1.0, flap_deaths=100))
    delays = [tracker.record_death(now=float(i), uptime=0.5).delay for i in range(7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_a_healthy_uptime_resets_the_backoff() -> None:
    tracker = RestartTracker(RestartPolicy(initial=0.1, maximum=30.0, reset_after=10.0, flap_deaths=100))
    assert [tracker.record_death(now=float(i), uptime=1.0).delay for i in range(3)] == [0.1, 0.2, 0.4]
    assert tracker.record_death(now=100.0, uptime=10.0).delay == 0.1
    assert tracker.record_death(now=101.0, uptime=1.0).delay == 0.2


def test_five_deaths_in_the_window_mark_the_slot_failed_with_the_cooldown() -> None:
    tracker = RestartTracker(POLICY)
    decisions = [tracker.record_death(now=float(i), uptime=0.5) for i in range(5)]
    assert [d.failed for d in decisions] == [False, False, False, False, True]
    assert decisions[-1].delay == 30.0 and decisions[-1].deaths_in_window == 5
    # after the cool-down the count and the backoff start over
    after = tracker.record_death(now=40.0, uptime=0.5)
    assert after.failed is False and after.delay == 0.1 and after.deaths_in_window == 1


def test_deaths_older_than_the_window_do_not_count() -> None:
    tracker = RestartTracker(POLICY)
    for now in (0.0, 20.0, 40.0, 59.0):
        assert tracker.record_death(now=now, uptime=0.5).failed is False
    # the death at 0 s has left the 60 s window by 61 s
    decision = tracker.record_death(now=61.0, uptime=0.5)
    assert decision.failed is False and decision.deaths_in_window == 4


def test_issue_17_deaths_with_tool_calls_in_flight_grow_the_backoff_but_do_not_count_for_flapping() -> None:
    tracker = RestartTracker(POLICY)
    decisions = [tracker.record_death(now=float(i), uptime=0.5, running=True) for i in range(8)]
    assert not any(d.failed for d in decisions)
    assert [d.delay for d in decisions[:5]] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert {d.deaths_in_window for d in decisions} == {0}
    # the deaths with nothing in flight are counted alone: the fifth of them rests the slot
    quiet = [tracker.record_death(now=10.0 + i, uptime=0.5) for i in range(5)]
    assert [d.deaths_in_window for d in quiet] == [1, 2, 3, 4, 5] and quiet[-1].failed
