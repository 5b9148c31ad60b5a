"""The six internal ``tasks:*`` entries exist where the 20 queue tools do (importing tools.py), run on
Trio; ``tasks:get``, ``tasks:stats`` and ``tasks:workflows`` are read-only, and ``tasks:stats`` has a
short timeout."""

from __future__ import annotations

from shared.kinds import get_entry_registry


def test_importing_the_queue_tools_registers_the_six_tasks_entries() -> None:
    import trio_worker.taskqueue.tools  # noqa: F401

    found = {entry.ref: entry for entry, _ in get_entry_registry().list_all() if entry.kind == "tasks"}
    assert set(found) == {
        "tasks:create",
        "tasks:get",
        "tasks:update",
        "tasks:cancel",
        "tasks:stats",
        "tasks:workflows",
    }
    for ref, entry in found.items():
        assert entry.run.runtime == "trio"
        assert entry.run.timeout_seconds == (2.0 if ref == "tasks:stats" else 30.0)
        assert entry.run.read_only is (ref in ("tasks:get", "tasks:stats", "tasks:workflows"))
