"""Which runtime runs a tool, decided the same way in every process.

``detect_runtime`` tries, in order, and remembers the answer per tool name:

1. the cache of earlier answers;
2. explicit metadata: the ``ToolMetadata`` given, or the one in the registry, when its runtime is not
   ``"auto"``;
3. the function attribute ``__mcp_runtime__`` (``"asyncio"`` or ``"trio"``);
4. the module pattern: a tool defined in a module whose dotted name has a part matching
   ``MODULE_PATTERNS`` (for example ``mytools.trio_tools``);
5. the name patterns ``p2p_*``, ``*workflow*``, ``*taskqueue*``, ``*peer*``, ``*bootstrap*`` → Trio;
6. otherwise asyncio.
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable
from typing import Any

from .metadata import RUNTIMES, Runtime, ToolMetadata, ToolMetadataRegistry, get_registry

RUNTIME_ATTRIBUTE = "__mcp_runtime__"
TRIO_NAME_PATTERNS: tuple[str, ...] = ("p2p_*", "*workflow*", "*taskqueue*", "*peer*", "*bootstrap*")
MODULE_PATTERNS: dict[str, Runtime] = {"*trio*": "trio", "*p2p*": "trio", "*asyncio*": "asyncio"}
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
    if func is None:
        func = registry.get_function(name)
    if func is not None:
        attribute = getattr(func, RUNTIME_ATTRIBUTE, None)
        if attribute in RUNTIMES:
            return attribute  # type: ignore[no-any-return]
        module = getattr(func, "__module__", None) or ""
        for part in module.split("."):
            for pattern, runtime in MODULE_PATTERNS.items():
                if fnmatch.fnmatchcase(part, pattern):
                    return runtime
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in TRIO_NAME_PATTERNS):
        return "trio"
    return DEFAULT_RUNTIME
