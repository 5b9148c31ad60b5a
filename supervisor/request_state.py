"""Sealing the ``requestState`` of the input-required flow (2026-07-28, SEP-2322).

A sealed state is what the client echoes on its retry; the server treats the echo as hostile. ``Sealer``
encrypts and authenticates it with AES-256-GCM (the SDK's ``AESGCMRequestStateCodec``: HKDF-derived keys,
a key fingerprint in each token, ``keys[0]`` seals, every key unseals) and binds it to

- the method (``tools/call``, ``prompts/get``, ``resources/read``),
- a digest of the request's params without ``_meta``, ``inputResponses`` and ``requestState`` (the tool
  name and arguments, the prompt and its arguments, the resource URI),
- the principal's subject when authorization is on (another principal's retry is refused),
- an expiry (``ttl`` seconds after sealing; 60 s of clock skew tolerated for the issue time).

A state sealed by another supervisor holding the same key opens here; one that was altered, sealed with a
key no longer in the ring, for another request, or expired is refused with ``ClientRequestError`` -32602
and a one-line reason.

Keys come from ``state_keys.load_state_keys``: the operator's ``state_keys`` setting, else one generated
once and kept in the state directory, so a restart keeps accepting the states it handed out.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState

from shared.errors import INVALID_PARAMS, ClientRequestError

DEFAULT_TTL = 600.0
"""Seconds a sealed state stays valid: long enough for a user to answer a form, short enough that a leaked
state soon becomes useless."""
FUTURE_SKEW = 60.0
"""Seconds a state's issue time may lie in the future (supervisors sharing a key, clocks apart)."""
ENVELOPE_VERSION = 1
UNBOUND_KEYS = frozenset({"_meta", "inputResponses", "requestState"})
"""Params that change from round to round and are left out of the request digest."""


def params_digest(params: Mapping[str, Any]) -> str:
    """A short digest of what identifies the request: ``params`` without ``UNBOUND_KEYS``, canonical JSON."""
    bound = {key: value for key, value in params.items() if key not in UNBOUND_KEYS}
    canonical = json.dumps(bound, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:18]).decode()


class Sealer:
    """Seals and opens request states under a ring of keys (each at least 32 bytes; the first seals).

    Raises:
        ValueError: no key, or a key shorter than 32 bytes (at construction).
    """

    def __init__(self, keys: Sequence[bytes], ttl: float = DEFAULT_TTL) -> None:
        self._codec = AESGCMRequestStateCodec(list(keys))
        self.ttl = ttl

    def seal(
        self, method: str, params: Mapping[str, Any], state: dict[str, Any], principal: str | None = None
    ) -> str:
        """An opaque token holding ``state`` for a retry of this very request by ``principal`` (the
        caller's subject; ``None`` without authorization)."""
        now = time.time()
        envelope = {
            "v": ENVELOPE_VERSION,
            "iat": now,
            "exp": now + self.ttl,
            "m": method,
            "d": params_digest(params),
            "s": state,
            "p": principal,
        }
        return self._codec.seal(json.dumps(envelope, separators=(",", ":")).encode())

    def open(
        self, method: str, params: Mapping[str, Any], token: object, principal: str | None = None
    ) -> dict[str, Any]:
        """The state sealed in ``token``, checked against this request, its principal and the clock.

        Raises:
            ClientRequestError: -32602, the token is malformed, tampered with, sealed under a key not in
                the ring, for another method, other params or another principal, or expired; the message
                says which.
        """
        if not isinstance(token, str):
            raise _refused("it is not a string")
        try:
            envelope = json.loads(self._codec.unseal(token))
        except InvalidRequestState:
            raise _refused(
                "it fails its integrity check (altered, or sealed with a key this server does not hold)"
            ) from None
        except ValueError:
            raise _refused("it is malformed") from None
        if not isinstance(envelope, dict) or envelope.get("v") != ENVELOPE_VERSION:
            raise _refused("it is malformed")
        now = time.time()
        issued, expires, state = envelope.get("iat"), envelope.get("exp"), envelope.get("s")
        if not isinstance(issued, (int, float)) or not issued <= now + FUTURE_SKEW:
            raise _refused("it was issued in the future")
        if not isinstance(expires, (int, float)) or not now < expires:
            raise _refused("it has expired; call again without it")
        if envelope.get("m") != method or envelope.get("d") != params_digest(params):
            raise _refused("it belongs to another request")
        if envelope.get("p") != principal:
            raise _refused("it belongs to another principal")
        if not isinstance(state, dict):
            raise _refused("it is malformed")
        return state


def _refused(reason: str) -> ClientRequestError:
    return ClientRequestError(f"invalid requestState: {reason}", INVALID_PARAMS)
