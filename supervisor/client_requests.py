"""The requests a tool may send to the client (sampling, elicitation, roots), checked as the SDK will send
them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mcp_types as types
import pydantic
from mcp_types import INVALID_REQUEST, METHOD_NOT_FOUND
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from shared.errors import INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY, ClientRequestError

_CLIENT_REQUESTS: dict[str, tuple[type[Any], type[Any], type[Any], types.ClientCapabilities, str]] = {
    "sampling/createMessage": (
        types.CreateMessageRequest,
        types.CreateMessageRequestParams,
        types.CreateMessageResult,
        types.ClientCapabilities(sampling=types.SamplingCapability()),
        "sampling",
    ),
    "elicitation/create": (
        types.ElicitRequest,
        types.ElicitRequestFormParams,
        types.ElicitResult,
        types.ClientCapabilities(elicitation=types.ElicitationCapability()),
        "elicitation",
    ),
    "roots/list": (
        types.ListRootsRequest,
        types.RequestParams,
        types.ListRootsResult,
        types.ClientCapabilities(roots=types.RootsCapability()),
        "roots",
    ),
}


def check_client_request(
    method: str,
    params: dict[str, Any],
    supports: Callable[[types.ClientCapabilities], bool],
    protocol_version: str,
) -> tuple[Any, type[Any]]:
    """The SDK request for a tool's ``method`` to the client, and the type of its result.

    Raises:
        ClientRequestError: not a request a tool may send, a capability ``supports`` denies (code -32021
            from 2026-07-28 on, where a call the tool does not let go on fails with it; -32600 before),
            or invalid params.
    """
    known = _CLIENT_REQUESTS.get(method)
    if known is None:
        raise ClientRequestError(f"a tool cannot send {method!r} to the client", METHOD_NOT_FOUND)
    request_type, params_type, result_type, capability, feature = known
    if not supports(capability):
        missing = (
            MISSING_REQUIRED_CLIENT_CAPABILITY
            if protocol_version in MODERN_PROTOCOL_VERSIONS
            else INVALID_REQUEST
        )
        required = {
            "requiredCapabilities": capability.model_dump(by_alias=True, mode="json", exclude_none=True)
        }
        raise ClientRequestError(f"the client does not support {feature} ({method})", missing, required)
    try:
        request = request_type(params=params_type.model_validate(params, by_name=False))
    except pydantic.ValidationError as exc:
        raise ClientRequestError(f"invalid {method} request: {first_error(exc)}", INVALID_PARAMS) from None
    return request, result_type


def first_error(exc: pydantic.ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    return f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
