"""A py-spy profile of a process under load, reduced to the few numbers "What limits it" quotes.

``py-spy record --format raw`` writes one line per distinct stack, root first, with its sample count. Each
sample is attributed to its innermost Python frame ("self" time), and the frames are grouped by the layer
of the stack they belong to (uvicorn, the SDK, pydantic, the router...). The event loop's own C code (uvloop:
epoll, socket reads and writes, scheduling) shows as the loop's ``run`` frame being innermost.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

LAYERS: list[tuple[str, str]] = [
    ("/supervisor/router.py", "router (supervisor/router.py)"),
    ("/supervisor/front.py", "front handlers (supervisor/front.py)"),
    ("/supervisor/", "supervisor, other"),
    ("/shared/protocol.py", "msgpack frames (shared/protocol.py)"),
    ("/shared/", "shared/"),
    ("/asyncio_worker/", "asyncio_worker/ (socket adapter)"),
    ("/trio_worker/", "trio_worker/"),
    ("/site-packages/zmq/", "pyzmq"),
    ("/site-packages/msgpack/", "msgpack"),
    ("/site-packages/uvicorn/", "uvicorn (HTTP protocol)"),
    ("/site-packages/httptools/", "uvicorn (HTTP protocol)"),
    ("/site-packages/h11/", "uvicorn (HTTP protocol)"),
    ("/site-packages/starlette/", "starlette / FastAPI (routing, requests, responses)"),
    ("/site-packages/fastapi/", "starlette / FastAPI (routing, requests, responses)"),
    ("/site-packages/mcp_types/", "mcp SDK (mcp, mcp_types)"),
    ("/site-packages/mcp/", "mcp SDK (mcp, mcp_types)"),
    ("/site-packages/pydantic", "pydantic (validation, serialization)"),
    ("/site-packages/anyio/", "anyio (task groups, memory streams)"),
    ("/site-packages/sniffio/", "anyio (task groups, memory streams)"),
    ("/site-packages/opentelemetry/", "opentelemetry (SDK's tracing hooks)"),
    ("/site-packages/psutil/", "psutil"),
    ("/concurrent/futures/", "thread pool (concurrent.futures)"),
    ("<string>", "generated dataclass methods"),
    ("/site-packages/uvloop/", "event loop (uvloop C code: I/O, scheduling)"),
    ("/asyncio/runners.py", "event loop (uvloop C code: I/O, scheduling)"),
    ("/json/", "json (stdlib)"),
    ("/asyncio/", "asyncio (stdlib)"),
    ("/logging/", "logging (stdlib)"),
    ("/typing.py", "typing (stdlib)"),
    ("/contextlib.py", "contextlib (stdlib)"),
    ("/weakref.py", "weakref (stdlib)"),
]
"""``(path fragment, layer)``, first match wins."""

INCLUSIVE: list[tuple[str, str]] = [
    ("uvicorn HTTP protocol (parsing, writing)", "/site-packages/uvicorn/"),
    ("the SDK's HTTP transport and dispatch (mcp)", "/site-packages/mcp/"),
    ("pydantic validation and serialization", "/site-packages/pydantic"),
    ("the router: Router.call and the receive loop", "/supervisor/router.py"),
    ("pyzmq send/receive", "/site-packages/zmq/"),
    ("json encode/decode", "/json/"),
    ("anyio", "/site-packages/anyio/"),
    ("opentelemetry hooks", "/site-packages/opentelemetry/"),
]
"""Share of the samples with at least one frame under each path (overlapping)."""


def layer(file: str) -> str:
    for fragment, name in LAYERS:
        if fragment in file:
            return name
    return "other"


def _frame(text: str) -> tuple[str, str]:
    match = _FRAME.match(text)
    if match is None:
        return text, ""
    return match["func"], match["file"]


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in file:
            rest = file.split(marker, 1)[1]
            return rest.split("/", 1)[1] if marker == "/lib/python3." and "/" in rest else rest
    for marker in ("/supervisor/", "/shared/", "/asyncio_worker/", "/trio_worker/", "/benchmarks/"):
        if marker in file:
            return marker.strip("/") + "/" + file.split(marker, 1)[1]
    return file


@dataclass
class Profile:
    """The samples of the main thread (the event loop: where a request's Python runs), and how many
    samples each thread had (``py-spy --threads``)."""

    samples: int = 0
    layers: Counter[str] = field(default_factory=Counter)
    functions: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)
    callers: dict[str, Counter[str]] = field(default_factory=dict)
    """Innermost function → the nearest frame of another layer that led to it (its caller, by layer)."""
    raw: str = ""
    """The collapsed stacks as py-spy wrote them (for flame graph tools)."""

    def share(self, count: int) -> float:
        return count / self.samples if self.samples else 0.0


def parse(path: Path) -> Profile:
    profile = Profile()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        thread = "MainThread"
        if parts[0].startswith("thread ("):
            thread = parts[0].partition(": ")[2] or parts[0]
            parts = parts[1:]
        profile.threads[thread] += count
        if thread != "MainThread" or not parts:
            continue
        frames = [_frame(part) for part in parts]
        func, file = frames[-1]
        profile.samples += count
        own = layer(file)
        profile.layers[own] += count
        key = f"`{func}` ({_short(file)})"
        profile.functions[key] += count
        caller = next(
            (f"`{f}` ({_short(path)})" for f, path in reversed(frames[:-1]) if layer(path) != own), "(root)"
        )
        profile.callers.setdefault(key, Counter())[caller] += count
        files = [f for _, f in frames]
        for name, fragment in INCLUSIVE:
            if any(fragment in f for f in files):
                profile.inclusive[name] += count
    return profile


_PREFIX = re.compile(
    r"\((?:[^();]*?/site-packages/|[^();]*?/lib/python3\.\d+/|[^();]*?/(?=(?:supervisor|shared|asyncio_worker|trio_worker|benchmarks)/))"
)


def shorten(raw: str) -> str:
    """The collapsed stacks with file paths cut to the package part (a third of the size)."""
    return _PREFIX.sub("(", raw)
