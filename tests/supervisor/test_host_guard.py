"""The accepted Host and Origin values: the loopback ones, the bind address's, and behind a proxy the
name of ``public_url`` (issue 18, section 3: a balancer passes the client's ``Host`` on unchanged)."""

from __future__ import annotations

import pytest
from mcp.server.transport_security import TransportSecurityMiddleware
from starlette.requests import Request

from shared.errors import ConfigError
from supervisor.config_load import load_settings
from supervisor.host_guard import public_names, transport_security


async def answer(middleware: TransportSecurityMiddleware, host: str, origin: str | None = None) -> int:
    """The status the SDK's check gives a GET with these headers (200: accepted)."""
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    request = Request({"type": "http", "method": "GET", "path": "/readyz", "headers": headers})
    refusal = await middleware.validate_request(request, is_post=False)
    return 200 if refusal is None else refusal.status_code


@pytest.mark.parametrize(
    ("url", "hosts", "origin"),
    [
        ("https://mcp.example.com", ["mcp.example.com", "mcp.example.com:443"], "https://mcp.example.com"),
        (
            "https://mcp.example.com:443/",
            ["mcp.example.com", "mcp.example.com:443"],
            "https://mcp.example.com",
        ),
        ("http://MCP.example.com:8443/base", ["mcp.example.com:8443"], "http://mcp.example.com:8443"),
        ("http://[2001:db8::1]:8000", ["[2001:db8::1]:8000"], "http://[2001:db8::1]:8000"),
        (
            "http://user:secret@mcp.example.com",
            ["mcp.example.com", "mcp.example.com:80"],
            "http://mcp.example.com",
        ),
    ],
)
def test_public_names(url: str, hosts: list[str], origin: str) -> None:
    assert public_names(url) == (hosts, origin)


@pytest.mark.anyio
async def test_public_url_admits_its_name_and_nothing_else() -> None:
    without = TransportSecurityMiddleware(transport_security(load_settings(environ={})))
    settings = load_settings(environ={}, overrides={"public_url": "https://mcp.example.com"})
    behind = TransportSecurityMiddleware(transport_security(settings))
    assert await answer(without, "mcp.example.com") == 421
    assert await answer(behind, "mcp.example.com") == 200
    assert await answer(behind, "mcp.example.com", "https://mcp.example.com") == 200
    assert await answer(behind, "127.0.0.1:8001") == 200  # the loopback names stay (health checks, ctl)
    assert await answer(behind, "mcp.example.com:8080") == 421
    assert await answer(behind, "evil.example") == 421
    assert await answer(behind, "mcp.example.com.evil.example") == 421
    assert await answer(behind, "mcp.example.com", "http://mcp.example.com") == 403  # another scheme
    assert await answer(behind, "mcp.example.com", "https://evil.example") == 403


@pytest.mark.parametrize("url", ["https://", "http://:8000", "http://mcp.example.com:99999", "ftp://x"])
def test_a_public_url_without_a_host_is_one_line(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, overrides={"public_url": url})
    assert str(caught.value).startswith("invalid configuration: public_url = ")
    assert "is not an http(s) URL with a host" in str(caught.value)
    assert "\n" not in str(caught.value)
