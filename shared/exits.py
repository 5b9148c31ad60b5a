"""Every exit code the product's processes end with, in one table, so that no number means two things.

===== ======================= ===========================================================================
code  name                    who ends with it, and when
===== ======================= ===========================================================================
0     ``EXIT_OK``             any: done (the supervisor stopped cleanly; a worker was sent STOP)
1     ``EXIT_FAILED``         ``ctl``/``top``: the supervisor refused or the command failed (Python also
                              exits 1 on an uncaught exception)
2     ``EXIT_USAGE``          any: a bad command line; the supervisor: could not start (``EXIT_STARTUP``:
                              bad configuration, port in use, a tool module that cannot be imported over
                              stdio...)
3     ``EXIT_FORCED``         the supervisor: stopped, but calls outlived the grace or workers were killed
4     ``EXIT_PROTOCOL``       a worker: the router refused it (protocol version) or sent something
                              undecodable
5     ``EXIT_ORPHANED``       a worker: the supervisor was gone when it started, or stopped answering
                              heartbeats
6     ``EXIT_UNREACHABLE``    ``ctl``/``top``: no supervisor is listening there
7     ``EXIT_PRIVILEGES``     a worker: it could not become ``worker_user``/``worker_group`` for good, or
                              could not reach the router before trying
8     ``EXIT_UNUSABLE``       the start-up probe (``shared.worker.probe``, run as ``worker_user``): a path
                              the workers need is closed to that user
===== ======================= ===========================================================================

systemd's unit relies on 2 (``RestartPreventExitStatus``) and 3 (``SuccessExitStatus``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_STARTUP = 2
EXIT_FORCED = 3
EXIT_PROTOCOL = 4
EXIT_ORPHANED = 5
EXIT_UNREACHABLE = 6
EXIT_PRIVILEGES = 7
EXIT_UNUSABLE = 8

WORKER_EXITS = {
    EXIT_OK: "stopped by the router",
    EXIT_USAGE: "bad command line",
    EXIT_PROTOCOL: "refused by the router, or an undecodable message",
    EXIT_ORPHANED: "orphaned: the supervisor was gone or silent",
    EXIT_PRIVILEGES: "could not drop to worker_user/worker_group",
}
"""What a worker's exit code means, as ``describe_exit`` words it."""
