"""Tests of shared/protocol.py: the wire format, encode/decode and the READY version check."""

from __future__ import annotations

import datetime
import math
import re
import typing
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import ProtocolError
from shared.protocol import (
    PROTOCOL_VERSION,
    Call,
    Cancel,
    CatalogChanged,
    Drain,
    Error,
    Heartbeat,
    Leaving,
    Log,
    Message,
    MessageType,
    Progress,
    Ready,
    Reply,
    Request,
    RequestCancel,
    RequestProgress,
    ResourceUpdated,
    Result,
    Stop,
    Threads,
    check_ready,
    decode,
    encode,
    peek,
)

SAMPLES: list[Message] = [
    Ready(
        worker_id="trio-0",
        pid=4242,
        pool="trio",
        protocol_version=PROTOCOL_VERSION,
        catalog=[{"name": "echo", "inputSchema": {"type": "object", "properties": {}}, "runtime": "trio"}],
        load_errors=["tool module 'broken' failed to import: ImportError: nope"],
        elsewhere={"whoami_asyncio": "asyncio"},
    ),
    Heartbeat(3),
    Call(7, "echo", {"message": "héllo", "n": [1, 2.5, None, True]}, 12.5, "token-1", {"k": "v"}),
    Call(8, "echo", {}, None, None, None),
    Call(9, "echo", {"x": 1}, 1.0, 17, None),
    Call(10, "users://{id}", {"id": "7"}, 1.0, None, None, "resource_template"),
    Cancel(7, "client cancelled"),
    Progress(7, 0.5, 1.0, "halfway"),
    Progress(7, 3.0, None, None),
    Log(7, "warning", "my.logger", {"detail": [1, 2]}),
    Log(7, "info", None, "plain text"),
    Request(7, 1, "sampling/createMessage", {"messages": []}),
    Reply(1, {"content": {"type": "text", "text": "ok"}}, None),
    Reply(2, None, {"code": -32600, "message": "bad"}),
    Result(7, {"content": [{"type": "text", "text": "hi"}], "isError": False}),
    Error(7, -32602, "unknown tool 'nope'"),
    Error(8, -32021, "the client does not support sampling", {"requiredCapabilities": {"sampling": {}}}),
    Drain(),
    Stop("supervisor stopping"),
    Request(0, 3, "tools/call", {"name": "echo", "arguments": {}, "timeout": 5.0}),
    RequestProgress(3, 1.0, 2.0, "half"),
    RequestCancel(3),
    ResourceUpdated("config://app"),
    CatalogChanged([{"name": "added", "inputSchema": {"type": "object"}, "metadata": {}}], [], {"x": "trio"}),
    Threads(8, 8, {"stubborn": 8}),
    Leaving("node stopping"),
]


def test_samples_cover_every_message_type() -> None:
    assert {type(sample) for sample in SAMPLES} == set(typing.get_args(Message))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    decoded = decode(encode(message))

    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_frame_is_a_msgpack_array_of_type_then_fields(message: Message) -> None:
    parts = msgpack.unpackb(encode(message), raw=False)

    type_name = re.sub(
        r"(?<!^)(?=[A-Z])", "_", type(message).__name__
    ).upper()  # RequestProgress → REQUEST_PROGRESS
    assert parts[0] == MessageType[type_name]
    assert parts[1:] == [list(field) if isinstance(field, tuple) else field for field in message]


def test_heartbeat_wire_bytes_are_pinned() -> None:
    """The wire format is an interface between processes of possibly different builds: pin one frame."""
    assert encode(Heartbeat(3)) == b"\x92\x02\x03"


def test_message_type_numbers_are_pinned() -> None:
    assert {t.name: int(t) for t in MessageType} == {
        "READY": 1,
        "HEARTBEAT": 2,
        "CALL": 3,
        "CANCEL": 4,
        "PROGRESS": 5,
        "LOG": 6,
        "REQUEST": 7,
        "REPLY": 8,
        "RESULT": 9,
        "ERROR": 10,
        "DRAIN": 11,
        "STOP": 12,
        "REQUEST_PROGRESS": 13,
        "REQUEST_CANCEL": 14,
        "RESOURCE_UPDATED": 15,
        "CATALOG_CHANGED": 16,
        "THREADS": 17,
        "LEAVING": 18,
    }


def test_ready_fields_are_pinned() -> None:
    """READY's fields in wire order; version 4 renamed the third from ``runtime`` to ``pool``."""
    assert Ready._fields == (
        "worker_id",
        "pid",
        "pool",
        "protocol_version",
        "catalog",
        "load_errors",
        "elsewhere",
    )


def test_strings_and_bytes_stay_distinct() -> None:
    decoded = decode(encode(Log(1, "info", None, {"text": "abc", "blob": b"abc"})))

    assert isinstance(decoded, Log)
    assert decoded.data == {"text": "abc", "blob": b"abc"}
    assert type(decoded.data["text"]) is str
    assert type(decoded.data["blob"]) is bytes


# -- decode refuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1",  # a byte msgpack never uses
        b"\x93\x01",  # a 3-element array cut short
        msgpack.packb([12, "reason"]) + b"\x00",  # trailing bytes
        b"",
    ],
    ids=["invalid-byte", "truncated", "trailing-data", "empty"],
)
def test_decode_refuses_what_is_not_msgpack(frame: bytes) -> None:
    with pytest.raises(ProtocolError, match="undecodable frame"):
        decode(frame)


@pytest.mark.parametrize(
    "value",
    [{"type": 2}, 5, "ready", None, [], ["2", 3], [None]],
    ids=["map", "int", "str", "nil", "empty-array", "str-type", "nil-type"],
)
def test_decode_refuses_what_is_not_a_typed_array(value: Any) -> None:
    with pytest.raises(ProtocolError, match=r"not a \[type, \.\.\.\] array"):
        decode(msgpack.packb(value))


@pytest.mark.parametrize("type_number", [0, 19, 99, -1])
def test_decode_refuses_unknown_type(type_number: int) -> None:
    with pytest.raises(ProtocolError, match=f"unknown message type {type_number}"):
        decode(msgpack.packb([type_number, "x"]))


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([MessageType.CALL, 1], "Call frame has 1 fields, expected 7"),
        ([MessageType.STOP, "a", "b"], "Stop frame has 2 fields, expected 1"),
        ([MessageType.DRAIN, "unexpected"], "Drain frame has 1 fields, expected 0"),
        ([MessageType.HEARTBEAT], "Heartbeat frame has 0 fields, expected 1"),
    ],
)
def test_decode_refuses_wrong_arity(parts: list[Any], expected: str) -> None:
    with pytest.raises(ProtocolError, match=expected):
        decode(msgpack.packb(parts))


# -- encode refuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{1, 2}, datetime.datetime(2024, 1, 1), object(), 2**70],
    ids=["set", "datetime", "object", "int-too-large"],
)
def test_encode_refuses_what_msgpack_cannot_carry(value: Any) -> None:
    with pytest.raises(ProtocolError, match="cannot encode Log"):
        encode(Log(1, "info", None, {"value": value}))


def test_encode_refuses_unencodable_call_arguments() -> None:
    with pytest.raises(ProtocolError, match="cannot encode Call"):
        encode(Call(1, "echo", {"when": datetime.date(2024, 1, 1)}, None, None, None))


# -- READY version check ----------------------------------------------------------------------------


def ready(version: int) -> Ready:
    return Ready("asyncio-1", 1234, "asyncio", version, [], [], {})


def test_check_ready_accepts_this_protocol_version() -> None:
    check_ready(ready(PROTOCOL_VERSION))


@pytest.mark.parametrize("version", [PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1, 0])
def test_check_ready_refuses_another_version_naming_worker_and_both_versions(version: int) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_ready(ready(version))

    message = str(caught.value)
    assert "asyncio-1" in message
    assert f"version {version}" in message
    assert f"speaks {PROTOCOL_VERSION}" in message


# -- property: Call round-trips arbitrary JSON-like arguments exactly --------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also tells ``True`` from ``1``, ``1`` from ``1.0`` and ``0.0`` from ``-0.0``."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


@settings(database=None, suppress_health_check=[HealthCheck.too_slow])  # examples: the profile decides
@given(
    arguments=st.dictionaries(st.text(max_size=10), json_values, max_size=6),
    call_id=st.integers(min_value=0, max_value=2**63 - 1),
    timeout=st.none() | st.floats(min_value=0.001, max_value=1e6),
    progress_token=st.none() | st.text(max_size=20) | st.integers(min_value=-(2**31), max_value=2**31),
)
def test_call_round_trips_json_like_arguments_exactly(
    arguments: dict[str, Any], call_id: int, timeout: float | None, progress_token: str | int | None
) -> None:
    call = Call(call_id, "tool", arguments, timeout, progress_token, None)

    decoded = decode(encode(call))

    assert isinstance(decoded, Call)
    assert same(list(decoded), list(call))


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_peek_reads_the_type_and_a_leading_integer_field(message: Message) -> None:
    code, first = peek(encode(message))

    assert code == _CODE[type(message)]
    leading = message[0] if len(message) else None
    assert first == (leading if isinstance(leading, int) and not isinstance(leading, bool) else None)


@pytest.mark.parametrize("call_id", [0, 127, 128, 255, 256, 65_535, 65_536, 2**32 - 1, 2**32, 2**63])
def test_peek_reads_call_ids_of_every_width(call_id: int) -> None:
    assert peek(encode(Result(call_id, {"content": []}))) == (MessageType.RESULT, call_id)


@pytest.mark.parametrize("frame", [b"", b"\x93", b"\xa3abc", b"\x92\xcc\x01", msgpack.packb({"a": 1})])
def test_peek_refuses_what_is_not_a_message(frame: bytes) -> None:
    with pytest.raises(ProtocolError):
        peek(frame)


_CODE = {
    cls: MessageType[re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).upper()]
    for cls in typing.get_args(Message)
}
