"""When to restart a worker that died: exponential backoff and flapping detection, for one worker slot.

Pure bookkeeping on the monotonic clock (the caller passes the times), so the rules can be tested without
processes or sleeps:

- a worker that stayed up ``reset_after`` seconds is restarted after ``initial`` seconds;
- otherwise each restart waits twice as long as the last, up to ``maximum``;
- ``flap_deaths`` deaths within ``flap_window`` seconds make the slot *failed*: it rests ``cooldown``
  seconds before the next try, and the count starts over.

Only a death with no tool call in flight counts for flapping: a start-up crash, an import error, a leak,
which is what resting the slot is for. A death with calls in flight is charged to the tools that were
running (``quarantine.py``: one bad tool is refused instead of its whole runtime); it still grows the
backoff, so a worker that keeps dying is never restarted in a tight loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial: float = 0.1
    maximum: float = 30.0
    reset_after: float = 10.0
    flap_deaths: int = 5
    flap_window: float = 60.0
    cooldown: float = 60.0


@dataclass(frozen=True, slots=True)
class RestartDecision:
    delay: float
    """Seconds to wait before the next start."""
    failed: bool
    """True when the slot is flapping: ``delay`` is then the cool-down."""
    deaths_in_window: int


class RestartTracker:
    """Backoff and flapping state of one worker slot."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self._delay = policy.initial
        self._deaths: deque[float] = deque()

    def record_death(self, now: float, uptime: float, *, running: bool = False) -> RestartDecision:
        """Account for a death at ``now`` after ``uptime`` seconds up, and say what to do next.
        ``running``: the worker was running tool calls; the death grows the backoff but is not counted
        for flapping."""
        policy = self.policy
        if uptime >= policy.reset_after:
            self._delay = policy.initial
        if not running:
            self._deaths.append(now)
        while self._deaths and now - self._deaths[0] >= policy.flap_window:
            self._deaths.popleft()
        count = len(self._deaths)
        if count >= policy.flap_deaths:
            self._deaths.clear()
            self._delay = policy.initial
            return RestartDecision(policy.cooldown, True, count)
        delay = self._delay
        self._delay = min(self._delay * 2, policy.maximum)
        return RestartDecision(delay, False, count)
