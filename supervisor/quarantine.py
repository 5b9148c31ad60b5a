"""Quarantine: a tool that keeps killing its worker is refused for a while, instead of its whole runtime.

When a worker crashes (a death the arbiter counts: not a stop, not a replacement), the router hands this
module the tools that were in flight on it (``suspects``). The rules, as guarantees:

- **Implicated.** A death counts once against every tool in flight on the worker: its calls in the
  router's in-flight table, and the sync calls that were cancelled but still held a thread (the router
  forgot them; they still ran). Several calls of one tool count once. Only tools: a resource, a prompt,
  a completion or an internal entry of the task queue in flight does not make a death "with calls in
  flight" (see ``restart.py``: such a death counts for the flapping rule).
- **Conviction.** A tool with ``deaths`` deaths counted within ``window`` seconds is quarantined for
  ``seconds``: ``refusal`` then gives every call of it a ``ToolQuarantinedError`` naming the tool, the
  deaths and when it will be tried again, before any worker is asked; the catalog leaves it out of
  ``tools/list`` (``on_change``).
- **Bystanders.** The deaths that convicted a tool are *explained*: they are taken off every other tool's
  count, so a tool that merely shared the worker with the culprit keeps no blame for them. When several
  tools reach the count at the same death (they were in flight together every time), a tool that has
  answered a call since its first counted death is cleared if another one has not: a tool that crashes
  its worker every time never answers, a bystander does. When they all answered, or none did, the
  evidence cannot tell them apart and they are all quarantined.
- **End.** The quarantine ends by itself after ``seconds`` (expiry is checked on every refusal and by a
  timer on the running loop, so the tool is listed again with ``list_changed`` even if nobody calls it), or
  at once with ``release`` (``ctl release TOOL``). A conviction consumes the deaths that made it, so a
  tool tried again starts from a clean count; ``release`` clears whatever was counted since.
- ``totals`` (quarantines per tool since the supervisor started) never goes down, not even on a reload.

Times: ``clock`` is monotonic (the rules); ``since`` and ``until`` are Unix times, for operators and
dashboards. Not thread-safe: the supervisor's loop only.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shared.errors import ToolQuarantinedError

from .inflight import PendingCall
from .links import WorkerLink

if TYPE_CHECKING:
    from .config import Settings

logger = logging.getLogger("mcp_supervisor.router")


@dataclass(frozen=True, slots=True)
class QuarantinePolicy:
    """``deaths`` (0: never quarantine) within ``window`` seconds quarantine a tool for ``seconds``."""

    deaths: int = 3
    window: float = 60.0
    seconds: float = 300.0


def quarantine_policy(settings: Settings) -> QuarantinePolicy:
    """When the router quarantines a tool: ``quarantine_deaths`` within ``flap_window``, for
    ``quarantine_seconds``."""
    return QuarantinePolicy(settings.quarantine_deaths, settings.flap_window, settings.quarantine_seconds)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One quarantined tool: the pool whose worker died, the deaths that convicted it, within ``window``
    seconds; ``since``/``until`` in Unix time, ``ends`` on the monotonic clock."""

    tool: str
    pool: str
    deaths: int
    window: float
    since: float
    until: float
    ends: float

    def document(self, now: float) -> dict[str, Any]:
        """The entry of /status's ``quarantined`` list at monotonic time ``now``."""
        return {
            "tool": self.tool,
            "pool": self.pool,
            "deaths": self.deaths,
            "since": round(self.since, 3),
            "until": round(self.until, 3),
            "retry_in_seconds": round(max(0.0, self.ends - now), 3),
        }

    def message(self, now: float) -> str:
        """The one line a refused call gets."""
        wait = max(1, math.ceil(self.ends - now))
        at = datetime.fromtimestamp(self.until, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"tool {self.tool!r} is quarantined: its worker died {_times(self.deaths)} within "
            f"{self.window:g} s while running it; it will be tried again in {wait} s (at {at})"
        )


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


@dataclass(frozen=True, slots=True)
class _Death:
    at: float
    """Monotonic time of the death."""
    death: int
    """Which death (one number per worker death, shared by every tool it was counted against)."""
    answered: int
    """How many calls of the tool had been answered then."""


def suspects(link: WorkerLink, pending: Mapping[int, PendingCall]) -> frozenset[str]:
    """The tools in flight on ``link`` (a worker that just died): its calls in the in-flight table
    ``pending``, and the cancelled sync calls still holding a thread; other kinds of entry left out."""
    refs = {pending[call_id].tool for call_id in link.in_flight if call_id in pending}
    refs.update(link.threads.held)
    return frozenset(ref for ref in refs if ":" not in ref)  # any other kind's reference is kind:key


class Quarantine:
    """The deaths counted against each tool and the tools quarantined now (``active``).

    ``answered(tool)`` is how many calls of ``tool`` a worker answered so far (the router's statistics);
    ``on_change(tools)`` (a plain attribute) is told the quarantined tools whenever they change.
    """

    def __init__(
        self,
        policy: QuarantinePolicy,
        answered: Callable[[str], int] = lambda tool: 0,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.policy = policy
        """Read at each death: a reload replaces it (quarantines in force keep their end)."""
        self.active: dict[str, Quarantined] = {}
        self.totals: dict[str, int] = {}
        """Quarantines per tool since the supervisor started (a Prometheus counter)."""
        self.on_change: Callable[[frozenset[str]], None] = lambda tools: None
        self._answered = answered
        self._clock = clock
        self._wall = wall
        self._counts: dict[str, deque[_Death]] = {}
        self._deaths = itertools.count(1)
        self._timer: asyncio.TimerHandle | None = None

    def deaths_of(self, tool: str) -> int:
        """Deaths counted against ``tool`` within the window now (0 once it is quarantined)."""
        self._forget_old(self._clock())
        return len(self._counts.get(tool, ()))

    def record_death(self, pool: str, tools: Collection[str]) -> list[str]:
        """Count a death of a worker of ``pool`` against ``tools`` (its ``suspects``); returns the tools
        this death quarantined, sorted."""
        policy = self.policy
        if policy.deaths <= 0 or not tools:
            return []
        now = self._clock()
        self._expire(now)
        death = next(self._deaths)
        for tool in tools:
            if tool not in self.active:
                self._counts.setdefault(tool, deque()).append(_Death(now, death, self._answered(tool)))
        self._forget_old(now)
        reached = sorted(t for t in tools if len(self._counts.get(t, ())) >= policy.deaths)
        if not reached:
            return []
        convicted = [t for t in reached if self._answered(t) <= self._counts[t][0].answered] or reached
        explained = {counted.death for tool in convicted for counted in self._counts[tool]}
        since = self._wall()
        for tool in convicted:
            deaths = len(self._counts.pop(tool))
            self.active[tool] = Quarantined(
                tool, pool, deaths, policy.window, since, since + policy.seconds, now + policy.seconds
            )
            self.totals[tool] = self.totals.get(tool, 0) + 1
            logger.error(
                "tool %r quarantined for %g s: its %s worker died %s within %g s while running it",
                tool, policy.seconds, pool, _times(deaths), policy.window,
            )  # fmt: skip
        for tool, counted in list(self._counts.items()):
            kept = deque(entry for entry in counted if entry.death not in explained)
            if kept:
                self._counts[tool] = kept
            else:
                del self._counts[tool]
        self._changed()
        return convicted

    def refusal(self, tool: str) -> ToolQuarantinedError | None:
        """The error a call of ``tool`` gets now, or None when it is not quarantined (any more)."""
        entry = self.active.get(tool)
        if entry is None:
            return None
        now = self._clock()
        if now >= entry.ends:
            self._expire(now)
            return None
        return ToolQuarantinedError(entry.message(now))

    def release(self, tool: str) -> Quarantined | None:
        """End ``tool``'s quarantine now and clear its death count; returns what it was, or None when
        ``tool`` was not quarantined (nothing is changed then)."""
        entry = self.active.pop(tool, None)
        if entry is None:
            return None
        self._counts.pop(tool, None)
        logger.warning("tool %r released from quarantine", tool)
        self._changed()
        return entry

    def documents(self) -> list[dict[str, Any]]:
        """/status's ``quarantined``: one entry per tool quarantined now, by name."""
        now = self._clock()
        self._expire(now)
        return [self.active[tool].document(now) for tool in sorted(self.active)]

    def close(self) -> None:
        """Cancel the expiry timer; idempotent."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- internals ---------------------------------------------------------------------------------

    def _forget_old(self, now: float) -> None:
        window = self.policy.window
        for tool, counted in list(self._counts.items()):
            while counted and now - counted[0].at >= window:
                counted.popleft()
            if not counted:
                del self._counts[tool]

    def _expire(self, now: float) -> None:
        ended = [tool for tool, entry in self.active.items() if now >= entry.ends]
        for tool in ended:
            del self.active[tool]
            logger.warning("tool %r is tried again: its quarantine ended", tool)
        if ended:
            self._changed()

    def _changed(self) -> None:
        self.on_change(frozenset(self.active))
        self._schedule()

    def _schedule(self) -> None:
        """A timer on the running loop for the next end of a quarantine (none outside a loop: expiry is
        then checked when asked)."""
        self.close()
        if not self.active:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        first = min(entry.ends for entry in self.active.values())
        self._timer = loop.call_later(max(0.0, first - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._expire(self._clock())
        if self.active and self._timer is None:  # woke a little early: wait again
            self._schedule()
