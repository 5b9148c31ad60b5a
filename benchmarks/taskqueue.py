"""6. Task queue: submissions/s and completions/s.

The task queue (issue 5) does not exist yet; the row is reported as not available, without numbers, so
that the table lists every target of the issue.
"""

from __future__ import annotations

from benchmarks._common import Section, Suite, Target

NAME = "taskqueue"
TITLE = "Task queue (issue 5)"
UNAVAILABLE = "not available yet (issue 5)"


async def run(suite: Suite) -> Section:
    section = Section(NAME, TITLE)
    for key, what, limit in (
        ("submit", "task submissions/s", 2000.0),
        ("complete", "task completions/s", 500.0),
    ):
        section.targets.append(
            Target(
                key=f"taskqueue-{key}",
                what=what,
                target=f"≥ {limit:,.0f}/s",
                limit=limit,
                better="higher",
                measured=None,
                ratio=None,
                ratio_of="",
                absolute="",
                unavailable=UNAVAILABLE,
            )
        )
    section.details.append(f"Nothing measured: {UNAVAILABLE}.")
    return section
