"""Instructions per call on the worker's side of a hop, counted by Valgrind's callgrind: a figure that does
not depend on the machine's load, unlike the hop benchmark's times.

``python -m benchmarks.worker_instructions [--calls 500] [--base 100] [--gap 0.05] [PEER ...]`` runs each
peer twice under ``valgrind --tool=callgrind``, behind a bare blocking ROUTER in this process that sends one
CALL of the peer's no-op tool at a time, waits for its RESULT, then ``--gap`` seconds: once with ``--base``
calls, once with ``--base`` + ``--calls``. The difference of the two runs' instruction counts, divided by
``--calls``, is what one call costs the peer's process (all its threads, libzmq's I/O thread included);
start-up and shutdown cancel out (``PYTHONHASHSEED`` is fixed so both runs import alike).

The gap makes every CALL find the peer idle, waiting for its socket, as in the hop benchmark (where the
router takes longer to send the next call than the worker to finish the last). Under Valgrind the peer runs
50-100 times slower than the ROUTER, so without it (``--gap 0``) the next CALL is often already there when
the peer finishes, and what the peer does after a RESULT decides how many CALLs skip the wait: counts that
depend on timing, not on the code alone.

Peers: ``trio`` and ``asyncio`` (real workers with ``benchmarks.noop_tools``, started with the argv the
arbiter builds, heartbeat interval raised so that Valgrind's slowness is not taken for a hang),
``echo-trio``, ``echo-asyncio`` and ``echo-blocking`` (``benchmarks.echo_peer``: the transport alone).
With ``--pipelined K`` the ROUTER keeps K calls in flight instead of one. The larger run's callgrind
output is kept (``--out DIR``, default a new temporary directory) for ``callgrind_annotate``.

Every child is started by this process and stopped by its pid (STOP, then SIGKILL after a bound). Loopback
``ipc://`` only, in a private directory. Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import zmq

from benchmarks.echo_peer import STOP
from shared.launch import WorkerOptions
from shared.protocol import Call, Ready, Result, Stop, decode, encode

PEERS = ("trio", "asyncio", "echo-trio", "echo-asyncio", "echo-blocking")
TOOLS = {"trio": "noop_trio", "asyncio": "noop_asyncio"}
READY_DEADLINE_MS = 300_000
"""Valgrind makes start-up 50-100 times slower."""
CALL_DEADLINE_MS = 60_000
EXIT_WAIT = 120.0
HEARTBEAT_INTERVAL = 10_000.0
"""No heartbeat, and no missed one, during a run."""


def _argv(peer: str, endpoint: str) -> list[str]:
    if peer.startswith("echo-"):
        return ["-m", "benchmarks.echo_peer", endpoint, peer.removeprefix("echo-"), str(os.getpid()), "-1"]
    options = WorkerOptions(
        worker_id=f"{peer}-0",
        runtime=peer,  # type: ignore[arg-type]
        router=endpoint,
        parent_pid=os.getpid(),
        pool=peer,
        modules=("benchmarks.noop_tools",),
        heartbeat_interval=HEARTBEAT_INTERVAL,
        log_level="warning",
    )
    return options.command()


def run_once(peer: str, calls: int, pipelined: int, gap: float, out: Path, tag: str) -> int:
    """Run ``peer`` under callgrind for ``calls`` calls; returns its instruction count (Ir)."""
    out_file = out / f"callgrind.{peer}.{tag}"
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = context.socket(zmq.ROUTER)
    socket.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{out}/{peer}-{tag}.ipc"
    socket.bind(endpoint)
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", sys.executable]
    env = dict(os.environ, PYTHONHASHSEED="0")
    log = open(out / f"{peer}.{tag}.log", "wb")  # noqa: SIM115 - closed below
    child = subprocess.Popen([*command, *_argv(peer, endpoint)], env=env, stdout=log, stderr=log)
    echo = peer.startswith("echo-")
    try:
        socket.setsockopt(zmq.RCVTIMEO, READY_DEADLINE_MS)
        identity, hello = _recv(socket, out, peer, tag)
        if not echo and not isinstance(decode(hello), Ready):
            raise RuntimeError(f"{peer} sent {decode(hello)!r} before READY")
        socket.setsockopt(zmq.RCVTIMEO, CALL_DEADLINE_MS)
        frame = encode(Call(1, TOOLS.get(peer.removeprefix("echo-"), "noop_asyncio"), {}, 600.0, None, None))
        in_flight: deque[int] = deque()
        sent = answered = 0
        while answered < calls:
            while sent < calls and len(in_flight) < pipelined:
                socket.send_multipart([identity, frame])
                in_flight.append(sent)
                sent += 1
            _, reply = _recv(socket, out, peer, tag)
            if not echo and not isinstance(decode(reply), Result):
                continue  # a heartbeat
            in_flight.popleft()
            answered += 1
            if gap:
                time.sleep(gap)
        socket.send_multipart([identity, STOP if echo else encode(Stop("done"))])
        child.wait(EXIT_WAIT)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
        log.close()
        socket.close()
        context.term()
    return _total_ir(out_file)


def _recv(socket: zmq.Socket[bytes], out: Path, peer: str, tag: str) -> list[bytes]:
    try:
        return socket.recv_multipart()
    except zmq.Again:
        raise RuntimeError(f"{peer} did not answer in time; see {out / f'{peer}.{tag}.log'}") from None


def _total_ir(path: Path) -> int:
    """The ``totals:``/``summary:`` line of a callgrind output file (Ir, the first event)."""
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"(?:totals|summary):\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise RuntimeError(f"no totals in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("peers", nargs="*", default=["trio", "asyncio"], choices=PEERS)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--base", type=int, default=100)
    parser.add_argument("--pipelined", type=int, default=1)
    parser.add_argument("--gap", type=float, default=0.05)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    out = args.out or Path(tempfile.mkdtemp(prefix="worker-ir-"))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    print(f"callgrind output in {out}; {args.calls} calls, {args.pipelined} in flight")
    for peer in args.peers:
        start = time.monotonic()
        base = run_once(peer, args.base, args.pipelined, args.gap, out, "base")
        full = run_once(peer, args.base + args.calls, args.pipelined, args.gap, out, "full")
        per_call = (full - base) / args.calls
        print(f"{peer:14s} {per_call:12,.0f} instructions per call   ({time.monotonic() - start:.0f} s)")


if __name__ == "__main__":
    main()
