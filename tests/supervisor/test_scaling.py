"""Unit tests of supervisor/scaling.py: the scale-up limit and the start batches."""

from __future__ import annotations

from supervisor.scaling import (
    MAX_WORKERS_PER_CORE,
    counts_refusal,
    scale_limit,
    scale_refusal,
    start_batches,
)


def test_a_scale_up_past_the_per_core_limit_is_refused_in_one_line_issue_17() -> None:
    """``ctl scale asyncio 99`` on 2 cores was accepted and its start storm killed the running workers."""
    assert scale_limit(2) == 2 * MAX_WORKERS_PER_CORE
    assert scale_refusal("asyncio", 99, 1, cores=2) == (
        "99 asyncio workers is more than 8 (4 per core on 2 cores): more would starve the running workers"
    )
    assert scale_refusal("trio", 5, 1, cores=1) is not None


def test_up_to_the_limit_and_any_scale_down_are_accepted() -> None:
    assert scale_refusal("asyncio", 8, 1, cores=2) is None
    assert scale_refusal("asyncio", 0, 1, cores=2) is None
    assert scale_refusal("asyncio", 10, 12, cores=2) is None  # already above it (a config file): going down


def test_new_workers_start_half_the_cores_at_a_time() -> None:
    assert start_batches(list("abcde"), cores=4) == [["a", "b"], ["c", "d"], ["e"]]
    assert start_batches(list("abc"), cores=1) == [["a"], ["b"], ["c"]]
    assert start_batches([], cores=8) == []


def test_a_configuration_past_the_per_core_limit_is_refused_naming_the_setting_issue_17() -> None:
    assert counts_refusal({"asyncio": 8, "trio": 2}, cores=2) is None
    assert counts_refusal({"asyncio": 1, "trio": 9}, cores=2) == (
        "workers_trio = 9: 9 trio workers is more than 8 (4 per core on 2 cores): "
        "more would starve the running workers"
    )
