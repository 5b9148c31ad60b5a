"""The four internal ``tasks:*`` entries exist where the 20 queue tools do (importing tools.py), run on
Trio, and only ``tasks:get`` is read-only."""

from __future__ import annotations

from shared.kinds import get_entry_registry


def test_importing_the_queue_tools_registers_the_four_tasks_entries() -> None:
    import trio_worker.taskqueue.tools  # noqa: F401

    found = {entry.ref: entry for entry, _ in get_entry_registry().list_all() if entry.kind == "tasks"}
    assert set(found) == {"tasks:create", "tasks:get", "tasks:update", "tasks:cancel"}
    for ref, entry in found.items():
        assert entry.run.runtime == "trio" and entry.run.timeout_seconds == 30.0
        assert entry.run.read_only is (ref == "tasks:get")
