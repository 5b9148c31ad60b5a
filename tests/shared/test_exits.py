"""shared/exits.py: one table of exit codes for the supervisor, the workers, ``ctl`` and ``top``."""

from __future__ import annotations

from shared import exits
from shared.launch import EXIT_ORPHANED, EXIT_PROTOCOL
from supervisor import app, ctl, top


def test_no_code_means_two_things_issue_17() -> None:
    """3 meant a forced stop (supervisor), an orphaned worker and an unreachable supervisor (ctl)."""
    codes = {
        name: value
        for name, value in vars(exits).items()
        if name.startswith("EXIT_") and name != "EXIT_STARTUP"  # the supervisor's name for EXIT_USAGE
    }
    assert len(set(codes.values())) == len(codes), codes
    assert exits.EXIT_STARTUP == exits.EXIT_USAGE  # systemd: RestartPreventExitStatus=2
    assert len({app.EXIT_FORCED, EXIT_ORPHANED, ctl.EXIT_UNREACHABLE, EXIT_PROTOCOL}) == 4
    assert top.EXIT_UNREACHABLE == ctl.EXIT_UNREACHABLE and app.EXIT_FORCED == 3


def test_every_worker_code_the_table_names_is_a_code_of_the_table() -> None:
    values = {value for name, value in vars(exits).items() if name.startswith("EXIT_")}
    assert set(exits.WORKER_EXITS) <= values
