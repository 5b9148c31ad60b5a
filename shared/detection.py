"""Which runtime runs a tool, decided the same way in every process.

``detect_runtime`` tries, in order, and remembers the answer per tool name:

1. the cache of earlier answers;
2. explicit metadata: the ``ToolMetadata`` given, or the one in the registry, when its runtime is not
   ``"auto"``;
3. ``requires_p2p``: a tool that needs the P2P task queue runs on Trio, where the queue lives;
4. the function attribute ``__mcp_runtime__`` (``"asyncio"`` or ``"trio"``);
5. the module: a tool defined in a module whose dotted name has a *segment* in ``MODULE_SEGMENTS``
   (for example ``mytools.trio_tools`` → trio; ``acme.patriot_tools`` is not ``trio``);
6. the tool name: a segment in ``TRIO_NAME_SEGMENTS`` (``p2p_send``, ``run_workflow_step``), or a last
   segment in ``TRIO_NAME_LAST_SEGMENTS`` (``list_peers``, but not ``peer_review``) → Trio;
7. otherwise asyncio.

Names are cut into segments at ``_``, ``-`` and ``.``, and a segment matches only as a whole word,
case-sensitively: a pattern never matches inside a longer word.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

from .metadata import RUNTIMES, Runtime, ToolMetadata, ToolMetadataRegistry, get_registry

RUNTIME_ATTRIBUTE = "__mcp_runtime__"
TRIO_NAME_SEGMENTS = frozenset({"p2p", "workflow", "workflows", "taskqueue", "bootstrap"})
"""A tool name with one of these segments anywhere runs on Trio."""
TRIO_NAME_LAST_SEGMENTS = frozenset({"peer", "peers"})
"""A tool name ending in one of these segments runs on Trio: ``add_peer``, ``list_peers``. Only at the end,
where the word names what the tool acts on: ``peer_review`` is not about network peers."""
MODULE_SEGMENTS: dict[str, Runtime] = {"trio": "trio", "p2p": "trio", "asyncio": "asyncio"}
"""A module whose dotted name has one of these segments decides the runtime; the first such segment from
the left wins."""
DEFAULT_RUNTIME: Runtime = "asyncio"

_cache: dict[str, Runtime] = {}
_cache_lock = threading.Lock()


def detect_runtime(
    name: str,
    func: Callable[..., Any] | None = None,
    metadata: ToolMetadata | None = None,
    *,
    registry: ToolMetadataRegistry | None = None,
    use_cache: bool = True,
) -> Runtime:
    """The runtime of the tool called ``name``; never raises for an unknown tool (it gets the default)."""
    if use_cache:
        cached = _cache.get(name)
        if cached is not None:
            return cached
    runtime = _detect_uncached(name, func, metadata, registry if registry is not None else get_registry())
    if use_cache:
        with _cache_lock:
            _cache[name] = runtime
    return runtime


def clear_cache() -> None:
    """Forget every cached answer (after the registry changed)."""
    with _cache_lock:
        _cache.clear()


def _detect_uncached(
    name: str,
    func: Callable[..., Any] | None,
    metadata: ToolMetadata | None,
    registry: ToolMetadataRegistry,
) -> Runtime:
    if metadata is not None and metadata.runtime in RUNTIMES:
        return metadata.runtime
    registered = registry.get(name)
    if registered is not None and registered.runtime in RUNTIMES:
        return registered.runtime
    if (metadata is not None and metadata.requires_p2p) or (
        registered is not None and registered.requires_p2p
    ):
        return "trio"
    if func is None:
        func = registry.get_function(name)
    if func is not None:
        attribute = getattr(func, RUNTIME_ATTRIBUTE, None)
        if attribute in RUNTIMES:
            return attribute  # type: ignore[no-any-return]
        module = getattr(func, "__module__", None) or ""
        for segment in _segments(module):
            if segment in MODULE_SEGMENTS:
                return MODULE_SEGMENTS[segment]
    segments = _segments(name)
    if TRIO_NAME_SEGMENTS.intersection(segments) or (segments and segments[-1] in TRIO_NAME_LAST_SEGMENTS):
        return "trio"
    return DEFAULT_RUNTIME


_SEPARATORS = re.compile(r"[_.\-]+")


def _segments(name: str) -> list[str]:
    """``"acme.trio_tools"`` → ``["acme", "trio", "tools"]``."""
    return [segment for segment in _SEPARATORS.split(name) if segment]
