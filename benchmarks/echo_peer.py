"""The far end of the hop benchmark's baselines: ``python -m benchmarks.echo_peer ENDPOINT MODE PARENT CPU``.

A DEALER connects to ``ENDPOINT`` (the benchmark's ROUTER) as a worker's does, and answers every frame
until it receives ``STOP``. ``MODE`` is one of

- ``blocking``: every frame sent straight back on blocking pyzmq (the baseline of the hop's ratios);
- ``asyncio``: the same on ``zmq.asyncio`` (on uvloop when installed), the send not awaited, as the asyncio
  worker sends;
- ``trio``: the same on Trio, through the Trio worker's ZeroMQ adapter (``TrioZmqSocket``);
- ``standin``: a stand-in worker on blocking pyzmq that announces the real catalog of
  ``benchmarks.noop_tools`` in READY, then answers each CALL with ``OK_RESULT`` without running anything,
  and each heartbeat, until STOP: the router's side of a hop without a real worker's.

The echoes announce themselves with one ``hello`` frame. The child dies with the benchmark (``PARENT``; see
``benchmarks.lib.lifeline``) and runs on core ``CPU`` unless it is ``-1``. Each mode imports what it needs
when it starts: the blocking echo loads nothing but pyzmq.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, TypeVar

import zmq

from benchmarks.lib.lifeline import die_with_parent

STOP = b"stop"
"""The frame that ends an echo (the stand-in ends on a STOP message)."""
OK_RESULT: dict[str, Any] = {"content": [{"type": "text", "text": "ok"}], "isError": False}
"""What the stand-in answers every CALL with: what the tools of ``benchmarks.noop_tools`` return."""
STANDIN_ID = "standin-0"
MODES = ("blocking", "asyncio", "trio", "standin")

SocketT = TypeVar("SocketT", bound="zmq.Socket[Any]")


def dealer(context: zmq.Context[SocketT], endpoint: str) -> SocketT:
    """A DEALER connected to ``endpoint``, with an identity of its own and no linger."""
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, f"echo/{os.getpid()}".encode())
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    return socket


def run_blocking(endpoint: str) -> None:
    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = dealer(context, endpoint)
    socket.send(b"hello")
    while True:
        frame = socket.recv()
        if frame == STOP:
            break
        socket.send(frame)
    socket.close()
    context.term()


async def run_asyncio(endpoint: str) -> None:
    import zmq.asyncio

    context = zmq.asyncio.Context()
    socket = dealer(context, endpoint)
    socket.send(b"hello")
    while True:
        frame = await socket.recv()
        if frame == STOP:
            break
        socket.send(frame, copy=False)  # not awaited, as the asyncio worker does
    socket.close()
    context.term()


async def run_trio(endpoint: str) -> None:
    from shared.zmqio.trio_socket import TrioZmqSocket

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    io = TrioZmqSocket(dealer(context, endpoint), multipart=False)

    def on_frame(frames: list[bytes]) -> None:
        if frames == [STOP]:
            io.close()
        else:
            io.send(frames)

    io.send([b"hello"])
    await io.pump(on_frame)
    context.term()


def run_standin(endpoint: str) -> None:
    from shared.protocol import Call, Heartbeat, Result, Stop, decode, encode
    from shared.worker import ToolHost

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    socket = dealer(context, endpoint)
    host = ToolHost(STANDIN_ID, "asyncio", ["benchmarks.noop_tools"], 1 << 24)
    host.load()  # only to announce the real catalog in READY; calls are answered without running anything
    socket.send(encode(host.ready()))
    while True:
        message = decode(socket.recv())
        if isinstance(message, Call):
            socket.send(encode(Result(message.call_id, OK_RESULT)))
        elif isinstance(message, Heartbeat):
            socket.send(encode(Heartbeat(0)))
        elif isinstance(message, Stop):
            break
    socket.close()
    context.term()


def main(argv: list[str]) -> int:
    """``argv`` is ``[ENDPOINT, MODE, PARENT, CPU]``; returns the exit code."""
    endpoint, mode, parent, cpu = argv[0], argv[1], int(argv[2]), int(argv[3])
    die_with_parent(parent)
    if cpu >= 0 and sys.platform.startswith("linux"):
        os.sched_setaffinity(0, {cpu})
    if mode == "blocking":
        run_blocking(endpoint)
    elif mode == "standin":
        run_standin(endpoint)
    elif mode == "asyncio":
        try:
            import uvloop
        except ImportError:
            asyncio.run(run_asyncio(endpoint))
        else:
            uvloop.run(run_asyncio(endpoint))
    elif mode == "trio":
        import trio

        trio.run(run_trio, endpoint)
    else:
        print(f"unknown mode {mode!r}; one of {', '.join(MODES)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
