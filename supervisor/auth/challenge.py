"""What the resource server answers a refused request (RFC 6750 §3) and its metadata (RFC 9728)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import orjson
from starlette.types import Send

WELL_KNOWN = "/.well-known/oauth-protected-resource"
"""The protected resource metadata; also served with the resource's path appended (``.../mcp``)."""


def resource_metadata(
    resource: str, authorization_servers: Collection[str], scopes: Collection[str]
) -> dict[str, Any]:
    """The RFC 9728 document of the ``/mcp`` resource."""
    document: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-supervisor",
    }
    if scopes:
        document["scopes_supported"] = sorted(scopes)
    return document


def www_authenticate(metadata_url: str, error: str | None = None, scope: Collection[str] = ()) -> str:
    """The ``WWW-Authenticate`` value: ``Bearer resource_metadata="..."`` with the error and the scopes
    needed when there are."""
    parts = []
    if error is not None:
        parts.append(f'error="{error}"')
    if scope:
        parts.append(f'scope="{" ".join(sorted(scope))}"')
    parts.append(f'resource_metadata="{metadata_url}"')
    return "Bearer " + ", ".join(parts)


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: Collection[tuple[bytes, bytes]] = ()
) -> None:
    """One complete JSON response."""
    data = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
