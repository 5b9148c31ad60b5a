"""Tools that behave like untrusted code, for the containment tests (``test_containment.py``)."""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys

import anyio

from shared import ToolContext, tool_metadata

from . import call_tools  # noqa: F401  (serve the integration tools as well)

PR_GET_DUMPABLE = 3
PR_GET_CHILD_SUBREAPER = 37

_ESCAPE = """
import os, sys, time
pid = os.fork()
if pid == 0:
    os.setsid()            # leave the worker's session and process group
    os.dup2(2, 1)          # and hold the worker's output pipe, as a careless background job does
    time.sleep(1000)
    os._exit(0)
print(pid, flush=True)
"""


@tool_metadata(runtime="asyncio")
def it_spawn_tree() -> dict[str, int]:
    """Leave two processes behind: a child in the worker's process group, and a grandchild that called
    setsid() and whose parent exited; both hold the worker's stderr. Returns their pids."""
    child = subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL)
    middle = subprocess.run(
        [sys.executable, "-c", _ESCAPE], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True
    )
    return {"child": child.pid, "escaped": int(middle.stdout)}


@tool_metadata(runtime="asyncio")
def it_ctl(port: int, command: str) -> dict[str, object]:
    """Run ``python -m supervisor ctl --port <port> <command>`` from a process the tool setsid()s."""
    done = subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--port", str(port), command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    return {"code": done.returncode, "output": done.stdout + done.stderr}


@tool_metadata(runtime="asyncio")
def it_environment() -> list[str]:
    """The names of the worker's environment variables."""
    return sorted(os.environ)


@tool_metadata(runtime="asyncio")
def it_confinement() -> dict[str, object]:
    """The worker's resource limits and process flags."""
    libc = ctypes.CDLL(None, use_errno=True)
    reaper = ctypes.c_int(0)
    libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(reaper), 0, 0, 0)
    return {
        "core": list(resource.getrlimit(resource.RLIMIT_CORE)),
        "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "as": list(resource.getrlimit(resource.RLIMIT_AS)),
        "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
        "subreaper": reaper.value,
        "session_leader": os.getsid(0) == os.getpid(),
    }


_held: list[bytearray] = []


@tool_metadata(runtime="asyncio")
async def it_grow_and_hold(megabytes: int, seconds: float, ctx: ToolContext) -> str:
    """Take ``megabytes`` MiB of touched memory, report progress, then hold the call ``seconds``."""
    block = bytearray(megabytes * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    _held.append(block)
    await ctx.report_progress(0, 1, "holding")
    await anyio.sleep(seconds)
    return "held"
