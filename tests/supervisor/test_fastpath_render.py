"""The fast path's result rendering: what it passes through unchanged is what the SDK's per-version sieve
returns unchanged, in both eras; the ``serverInfo`` stamp only from 2026-07-28 on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from mcp_types import methods as spec_methods
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from supervisor.fastpath_render import ResultRenderer, _passes_through

STAMP = {"name": "mcp-supervisor", "version": "0"}
PLAIN = [
    {"content": [{"type": "text", "text": "hi"}], "isError": False},
    {"content": [], "isError": True},
    {"content": [{"type": "text", "text": "{}"}], "isError": False, "structuredContent": {"a": [1, None]}},
]


@pytest.mark.parametrize("version", HANDSHAKE_PROTOCOL_VERSIONS)
@pytest.mark.parametrize("result", PLAIN)
def test_a_handshake_era_result_passes_through_as_the_sdk_sieve_leaves_it(
    version: str, result: dict[str, Any]
) -> None:
    assert _passes_through("tools/call", result, modern=False)
    assert spec_methods.serialize_server_result("tools/call", version, dict(result)) == result
    assert orjson.loads(ResultRenderer(STAMP).serialize("tools/call", version, dict(result))) == result


@pytest.mark.parametrize("version", MODERN_PROTOCOL_VERSIONS)
def test_a_modern_result_is_stamped(version: str) -> None:
    result = {**PLAIN[0], "resultType": "complete"}
    rendered = orjson.loads(ResultRenderer(STAMP).serialize("tools/call", version, dict(result)))
    assert rendered == {**result, "_meta": {"io.modelcontextprotocol/serverInfo": STAMP}}


def test_a_handshake_result_with_another_shape_goes_through_the_sieve() -> None:
    """An image block is not passed through; the sieve shapes it (and a 2026 ``resultType`` is not a
    handshake-era field)."""
    result = {"content": [{"type": "image", "data": "aGk=", "mimeType": "image/png"}], "isError": False}
    assert not _passes_through("tools/call", result, modern=False)
    assert not _passes_through("tools/call", {**PLAIN[0], "resultType": "complete"}, modern=False)
    rendered = orjson.loads(ResultRenderer(STAMP).serialize("tools/call", "2025-11-25", dict(result)))
    assert rendered == spec_methods.serialize_server_result("tools/call", "2025-11-25", dict(result))
