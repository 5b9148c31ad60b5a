"""supervisor/process.py: how a worker's end is worded."""

from __future__ import annotations

import signal

from shared.launch import EXIT_ORPHANED, EXIT_PROTOCOL
from supervisor.process import describe_exit


def test_the_codes_a_worker_ends_with_on_purpose_are_named_issue_17() -> None:
    """``exit code 4`` said nothing; the operator had to read shared/launch.py."""
    assert describe_exit(EXIT_PROTOCOL) == "exit code 4 (refused by the router, or an undecodable message)"
    assert describe_exit(EXIT_ORPHANED) == "exit code 5 (orphaned: the supervisor was gone or silent)"
    assert describe_exit(0) == "exit code 0 (stopped by the router)"


def test_other_codes_and_signals() -> None:
    assert describe_exit(70) == "exit code 70"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-200) == "killed by signal 200"
