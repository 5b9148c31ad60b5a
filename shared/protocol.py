"""The router⇄worker wire protocol: message types, encoding and limits.

Every message is one ZeroMQ frame holding one msgpack array ``[type, field, field, ...]``; the ROUTER
side adds the worker's identity frame in front. A fixed array instead of a map keeps frames small and
decoding cheap (see docs/protocol.md for the measurement). Field order is the order of the NamedTuple
below; a frame with the wrong number of fields, an unknown type or a different ``PROTOCOL_VERSION`` in
READY is a ``ProtocolError``. Never pickle: msgpack only, with ``raw=False`` and bounded sizes.
"""

from __future__ import annotations

import threading
from enum import IntEnum
from typing import Any, NamedTuple

import msgpack

from .errors import ProtocolError

PROTOCOL_VERSION = 9
"""Bumped on every incompatible change; the router refuses a READY that carries another version."""

DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
"""Largest frame either side accepts (``ZMQ_MAXMSGSIZE``); configurable as ``max_message_size``."""

HEARTBEAT_INTERVAL = 0.25
"""Seconds between two HEARTBEAT frames, both ways (the default of ``heartbeat_interval``): short enough
that a hung worker is noticed within 1.75 s (silent ``LIVENESS_MISSES`` intervals, seen at the next tick),
so that it is replaced within 2 s."""
LIVENESS_MISSES = 6
"""Heartbeat intervals of silence after which the router takes a worker for dead and kills it: 1.5 s by
default, so that a tool that blocks its event loop for a second (the isolation benchmark's) is not taken
for a hang, wherever in an interval the block begins."""
ORPHAN_MISSES = 13
"""Heartbeat intervals of the router's silence after which a worker exits (``EXIT_ORPHANED``): longer
than ``LIVENESS_MISSES``, because a false positive here takes every worker down at once (a supervisor
stalled for a moment), and the parent-death signal already covers a supervisor that died."""


class MessageType(IntEnum):
    READY = 1
    HEARTBEAT = 2
    CALL = 3
    CANCEL = 4
    PROGRESS = 5
    LOG = 6
    REQUEST = 7
    REPLY = 8
    RESULT = 9
    ERROR = 10
    DRAIN = 11
    STOP = 12
    REQUEST_PROGRESS = 13
    REQUEST_CANCEL = 14
    RESOURCE_UPDATED = 15
    CATALOG_CHANGED = 16
    THREADS = 17
    LEAVING = 18


class Ready(NamedTuple):
    """worker → router, once, after the tool modules are imported.

    ``pool`` is the set of workers the router routes the worker's tools among: named after the worker's
    runtime for ordinary workers (``asyncio``, ``trio``), or a pool of its own such as ``trio-queue``."""

    worker_id: str
    pid: int
    pool: str
    protocol_version: int
    catalog: list[dict[str, Any]]
    load_errors: list[str]
    elsewhere: dict[str, str]
    """Tools of the other runtimes found in the same modules (name → runtime), so the router knows
    where a tool belongs (the pool named after its runtime) even while no worker of it has started."""


class Heartbeat(NamedTuple):
    """Both directions, every ``heartbeat_interval``; ``in_flight`` is the sender's count of open calls."""

    in_flight: int


class Call(NamedTuple):
    """router → worker: run the entry ``tool`` of ``kind`` with ``arguments``; ``timeout`` is seconds from
    now or None.

    ``tool`` is the entry's key: a tool's name, a resource's URI, a template's URI template, a prompt's
    name, a completion handler's ``completion_key`` (``shared.kinds``)."""

    call_id: int
    tool: str
    arguments: dict[str, Any]
    timeout: float | None
    progress_token: str | int | None
    meta: dict[str, Any] | None
    kind: str = "tool"
    """``tool``, ``resource``, ``resource_template``, ``prompt`` or ``completion`` (protocol 5)."""


class Cancel(NamedTuple):
    """router → worker: cancel a call; the worker sends nothing more for it."""

    call_id: int
    reason: str


class Progress(NamedTuple):
    """worker → router: a progress report of a running call."""

    call_id: int
    progress: float
    total: float | None
    message: str | None


class Log(NamedTuple):
    """worker → router: a log message a tool sent to the client (``ctx.log``)."""

    call_id: int
    level: str
    logger: str | None
    data: Any


class Request(NamedTuple):
    """worker → router: a request made by a tool (sampling, elicitation, roots, tool call), or with
    ``call_id`` 0 by the worker itself (``tools/call``, ``supervisor/tools``, ``supervisor/workers``).

    A request to the client carries its key in ``params["_meta"]`` (``shared.context.INPUT_KEY_META``);
    the router takes it out (protocol 6)."""

    call_id: int
    request_id: int
    method: str
    params: dict[str, Any]


class Reply(NamedTuple):
    """router → worker: the answer to a Request; exactly one of ``result`` and ``error`` is set."""

    request_id: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None


class Result(NamedTuple):
    """worker → router: the call finished; ``result`` is an MCP ``CallToolResult`` in wire form."""

    call_id: int
    result: dict[str, Any]


class Error(NamedTuple):
    """worker → router: the call could not start (unknown tool, invalid arguments): a protocol error."""

    call_id: int
    code: int
    message: str
    data: Any = None
    """JSON-RPC ``error.data`` (``requiredCapabilities`` for -32021), or None."""


class RequestProgress(NamedTuple):
    """router → worker: progress of a ``tools/call`` the worker itself requested (``call_id`` 0)."""

    request_id: int
    progress: float
    total: float | None
    message: str | None


class RequestCancel(NamedTuple):
    """worker → router: cancel a request of the worker's own (``call_id`` 0) that is still running."""

    request_id: int


class ResourceUpdated(NamedTuple):
    """worker → router: a resource changed (``ctx.resource_updated``); the front tells every session
    subscribed to ``uri`` (``notifications/resources/updated``)."""

    uri: str


class CatalogChanged(NamedTuple):
    """worker → router: the worker's entries changed after READY (``ctx.announce_catalog()`` after an entry
    was registered at run time); the same three fields as READY's, which they replace."""

    catalog: list[dict[str, Any]]
    load_errors: list[str]
    elsewhere: dict[str, str]


class Threads(NamedTuple):
    """worker → router: the worker's pool of threads for sync tools changed state (protocol 8).

    Sent when the pool becomes full or stops being full, and when a cancelled call starts or stops holding
    a thread (a sync tool cannot be interrupted: one that ignores ``ctx.cancelled`` keeps its thread)."""

    busy: int
    """Threads running a sync tool now."""
    size: int
    """Threads in the pool (``--threads``)."""
    held: dict[str, int]
    """Tool name → threads still held by calls of it that were cancelled or timed out."""


class Leaving(NamedTuple):
    """worker → router: route no new call to this worker; it finishes the calls it holds, then goes
    (protocol 9). A node sends it for a worker it drains: the router that routes to the worker is not the
    one that supervises it (docs/scaling.md)."""

    reason: str


class Drain(NamedTuple):
    """router → worker: take no new calls; finish the ones in flight."""


class Stop(NamedTuple):
    """router → worker: exit now (after cancelling what is left)."""

    reason: str


Message = (
    Ready
    | Heartbeat
    | Call
    | Cancel
    | Progress
    | Log
    | Request
    | Reply
    | Result
    | Error
    | Drain
    | Stop
    | RequestProgress
    | RequestCancel
    | ResourceUpdated
    | CatalogChanged
    | Threads
    | Leaving
)

_TYPE_OF: dict[type, MessageType] = {
    Ready: MessageType.READY,
    Heartbeat: MessageType.HEARTBEAT,
    Call: MessageType.CALL,
    Cancel: MessageType.CANCEL,
    Progress: MessageType.PROGRESS,
    Log: MessageType.LOG,
    Request: MessageType.REQUEST,
    Reply: MessageType.REPLY,
    Result: MessageType.RESULT,
    Error: MessageType.ERROR,
    Drain: MessageType.DRAIN,
    Stop: MessageType.STOP,
    RequestProgress: MessageType.REQUEST_PROGRESS,
    RequestCancel: MessageType.REQUEST_CANCEL,
    ResourceUpdated: MessageType.RESOURCE_UPDATED,
    CatalogChanged: MessageType.CATALOG_CHANGED,
    Threads: MessageType.THREADS,
    Leaving: MessageType.LEAVING,
}
_CLASS_OF: dict[int, type] = {int(t): cls for cls, t in _TYPE_OF.items()}
_CODE_OF: dict[type, int] = {cls: int(t) for cls, t in _TYPE_OF.items()}

_local = threading.local()
"""Holds one ``msgpack.Packer`` per thread: ``packb`` builds a new Packer on every call (about 1 µs of
a 1.4 µs encode), and a Packer is not safe to share between threads (sync tools emit from the pool)."""


def _packer() -> msgpack.Packer:
    try:
        packer: msgpack.Packer = _local.packer
    except AttributeError:
        packer = _local.packer = msgpack.Packer(use_bin_type=True)
    return packer


def encode(message: Message) -> bytes:
    """One msgpack frame for ``message``.

    Raises:
        ProtocolError: a field holds something msgpack cannot carry (for example a set or a datetime).
    """
    try:
        frame: bytes = _packer().pack((_CODE_OF[type(message)], *message))
        return frame
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProtocolError(f"cannot encode {type(message).__name__}: {exc}") from None


def decode(frame: bytes) -> Message:
    """The message held by one frame.

    Raises:
        ProtocolError: the frame is not msgpack, not an array, of an unknown type or of the wrong arity.
    """
    try:
        parts = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"undecodable frame ({len(frame)} bytes): {type(exc).__name__}") from None
    if not isinstance(parts, list) or not parts or not isinstance(parts[0], int):
        raise ProtocolError("frame is not a [type, ...] array")
    cls = _CLASS_OF.get(parts[0])
    if cls is None:
        raise ProtocolError(f"unknown message type {parts[0]}")
    try:
        return cls(*parts[1:])  # type: ignore[no-any-return]
    except TypeError:
        raise ProtocolError(
            f"{cls.__name__} frame has {len(parts) - 1} fields, expected {len(cls._fields)}"  # type: ignore[attr-defined]
        ) from None


_UINT_SIZES = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
"""msgpack's unsigned integer markers and the big-endian bytes that follow each."""


def peek(frame: bytes) -> tuple[int, int | None]:
    """The type code of ``frame`` and its first field when that is a non-negative integer (a call id, a
    request id), read without unpacking the rest: a node relays frames it need not open (a 16 MiB RESULT
    is not unpacked to learn its call id). Every message encodes as a fixarray of at most 15 items whose
    first item, the type code, is a positive fixint.

    Raises:
        ProtocolError: the frame does not start as an encoded message does.
    """
    if len(frame) < 2 or not 0x90 <= frame[0] <= 0x9F or frame[1] > 0x7F:
        raise ProtocolError("frame is not a [type, ...] array")
    if len(frame) < 3 or frame[0] == 0x91:
        return frame[1], None
    marker = frame[2]
    if marker <= 0x7F:
        return frame[1], marker
    size = _UINT_SIZES.get(marker)
    if size is None or len(frame) < 3 + size:
        return frame[1], None
    return frame[1], int.from_bytes(frame[3 : 3 + size], "big")


def too_large(what: str, size: int, limit: int) -> str:
    """The error message for a frame that cannot be sent: ``what`` would take ``size`` bytes."""
    return f"{what} would take {size} bytes, over the limit of {limit} bytes (max_message_size)"


def check_ready(message: Ready) -> None:
    """Refuse a READY from a worker speaking another protocol version."""
    if message.protocol_version != PROTOCOL_VERSION:
        raise ProtocolError(
            f"worker {message.worker_id} speaks protocol version {message.protocol_version}, "
            f"the router speaks {PROTOCOL_VERSION}: install the same mcp-supervisor version for both"
        )
