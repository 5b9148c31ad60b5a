"""Tests of shared/heap.py: start-up's heap is frozen once, after its own garbage is collected, and
generation 0 is collected less often."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from shared.heap import GEN0_THRESHOLD, freeze_startup_heap


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Give the test process back a normal heap: the freeze would outlive the test otherwise."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def is_walked_by_the_collector(obj: object) -> bool:
    """Whether ``obj`` is in one of the three generations (``gc.get_objects`` leaves out frozen ones)."""
    return any(o is obj for o in gc.get_objects())


def test_what_start_up_left_alive_is_frozen_and_no_longer_walked() -> None:
    kept: dict[str, Any] = {"module state": [1, 2, 3]}
    assert is_walked_by_the_collector(kept)

    frozen = freeze_startup_heap()

    assert frozen == gc.get_freeze_count() > 0
    assert not is_walked_by_the_collector(kept)
    assert gc.isenabled()


def test_start_up_garbage_is_collected_first_not_frozen() -> None:
    collected: list[str] = []

    class Cycle:
        def __init__(self) -> None:
            self.me = self

        def __del__(self) -> None:
            collected.append("cycle")

    gc.disable()  # keep the collector from running between the cycle's creation and the freeze
    try:
        Cycle()
        freeze_startup_heap()
    finally:
        gc.enable()

    assert collected == ["cycle"]


def test_what_serving_allocates_afterwards_is_still_collected() -> None:
    freeze_startup_heap()
    later: dict[str, Any] = {}
    later["self"] = later

    assert is_walked_by_the_collector(later)


def test_generation_0_waits_for_more_allocations_when_asked_and_the_older_ones_keep_their_thresholds() -> (
    None
):
    gc.set_threshold(700, 11, 12)

    freeze_startup_heap(GEN0_THRESHOLD)

    assert gc.get_threshold() == (GEN0_THRESHOLD, 11, 12)
    assert GEN0_THRESHOLD > 700


def test_the_thresholds_stay_unless_asked() -> None:
    gc.set_threshold(700, 11, 12)

    freeze_startup_heap()

    assert gc.get_threshold() == (700, 11, 12)
