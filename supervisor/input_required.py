"""The input-required flow (2026-07-28, SEP-2322): what a function asks the client, answered by a retry.

In the stateless era there is no channel for a server-to-client request in the middle of a call. A
function that awaits ``ctx.sample``, ``ctx.elicit`` or ``ctx.list_roots`` is instead *re-run* on every
round, with the answers at hand:

1. ``InputFlow.open`` reads the request: the sealed ``requestState`` (``request_state.Sealer``) holds the
   answers of earlier rounds and the requests issued in the last one (key → digest); ``inputResponses``
   adds the client's answers to those requests. A key the server did not ask is ignored. (A retry with
   no ``requestState`` has its answers taken by key alone: the client names what it answers.)
2. During the run, ``InputRound.on_request`` answers each request of the function from those answers: by
   its key (``ctx.elicit(..., key=...)``, else ``<kind>-<n>`` in the order the run asks) and only when the
   request is the one asked (same method and params digest). A request with no answer yet is recorded and
   refused with ``InputRequired``, which ends the run; requests the function makes concurrently (a
   ``gather`` or a nursery) are recorded together and go out in one round.
3. When the run recorded requests, the answer is ``resultType: "input_required"`` with ``inputRequests``
   and a new sealed ``requestState`` — whatever the function returned or raised after the refusal.

Nothing waits between rounds: a retry may reach another worker incarnation, a restarted supervisor or
another supervisor sharing the key. The price is that the function runs once per round, so what it does
before its last request is done again (docs/tools.md says how to guard side effects).

Every request is checked as the SDK would send it (``client_requests.check_client_request``): a capability
the client did not declare fails the call with -32021, as in the session era.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic
from mcp_types import ClientCapabilities

from shared.context import INPUT_KEY_META, START_TASK_METHOD
from shared.errors import (
    INPUT_PENDING,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallError,
    ClientRequestError,
)

from .auth.caller import current, subject_of
from .client_requests import check_client_request, first_error
from .request_state import DEFAULT_TTL, Sealer
from .state_keys import load_state_keys

INPUT_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
"""The requests whose result may be ``input_required``."""

_SHORT = {"sampling/createMessage": "sample", "elicitation/create": "elicit", "roots/list": "roots"}


def take_input_key(method: str, params: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The key a function gave its request (``ctx.elicit(..., key=...)`` or the context's ordinal), and the
    params without it, as they go to the client."""
    meta = params.get("_meta")
    if not isinstance(meta, dict) or INPUT_KEY_META not in meta:
        return None, params
    rest = {k: v for k, v in meta.items() if k != INPUT_KEY_META}
    clean = {k: v for k, v in params.items() if k != "_meta"}
    if rest:
        clean["_meta"] = rest
    key = meta[INPUT_KEY_META]
    return (key if isinstance(key, str) else None), clean


def request_digest(method: str, params: Mapping[str, Any]) -> str:
    """What an answer is bound to: the method and params of the request it answers."""
    canonical = json.dumps([method, params], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()[:12]).decode()


class InputRound:
    """One run of a function: its requests answered from ``answers`` (key → ``{"q": digest, "r":
    response}``), the others recorded in ``pending`` (key → the request as it goes on the wire).

    ``supports(capabilities)`` says whether the client declared them; ``version`` is the protocol version.
    ``can_start_task``: the call may become an MCP task where the function awaits ``ctx.run_as_task()``
    (the run ends there and ``start_task`` is set); otherwise that request is answered at once.
    """

    __slots__ = (
        "answers",
        "pending",
        "asked",
        "refused",
        "start_task",
        "_can_start_task",
        "_supports",
        "_version",
        "_count",
    )

    def __init__(
        self,
        answers: dict[str, dict[str, Any]],
        supports: Callable[[ClientCapabilities], bool],
        version: str,
        *,
        can_start_task: bool = False,
    ) -> None:
        self.answers = answers
        self.pending: dict[str, dict[str, Any]] = {}
        self.asked: dict[str, str] = {}
        self.refused = False
        """A request failed its capability check: the call fails with it, whatever else is pending."""
        self.start_task = False
        """The function awaited ``ctx.run_as_task()`` in a call that may become a task: it becomes one."""
        self._can_start_task = can_start_task
        self._supports = supports
        self._version = version
        self._count = 0

    async def on_request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """The answer to one request of the running function (a ``RequestCallback``).

        Raises:
            InputRequired: no answer yet; the request is recorded for the client (the run should end).
            ClientRequestError: a capability the client did not declare (-32021), invalid params, or an
                answer that is not a valid result.
        """
        if method == START_TASK_METHOD:
            return self._start_task()
        key, params = take_input_key(method, params)
        self._count += 1
        if key is None:
            key = f"{_SHORT.get(method, method)}-{self._count}"
        try:
            _, result_type = check_client_request(method, params, self._supports, self._version)
        except ClientRequestError as exc:
            self.refused = self.refused or exc.code == MISSING_REQUIRED_CLIENT_CAPABILITY
            raise
        digest = request_digest(method, params)
        answer = self.answers.get(key)
        if answer is not None and answer.get("q") in (None, digest):
            try:
                return result_type.model_validate(answer.get("r"), by_name=False).model_dump(  # type: ignore[no-any-return]
                    by_alias=True, mode="json", exclude_none=True
                )
            except pydantic.ValidationError as exc:
                raise ClientRequestError(
                    f"the client's answer to {method} ({key}) is invalid: {first_error(exc)}", INVALID_PARAMS
                ) from None
        self.pending[key] = {"method": method, "params": params}
        self.asked[key] = digest
        raise ClientRequestError(
            f"{method} ({key}) needs the client's answer: this run ends here and the call goes on when the "
            "client retries with it",
            INPUT_PENDING,
        )

    def _start_task(self) -> dict[str, Any]:
        """``ctx.run_as_task()``: end the run here when the call may become a task, else go on."""
        if not self._can_start_task:
            return {}
        self.start_task = True
        raise ClientRequestError(
            "the call becomes a task here: this run ends and the task runs the function again", INPUT_PENDING
        )

    @property
    def needs_input(self) -> bool:
        """Whether the call's answer is ``input_required``."""
        return bool(self.pending) and not self.refused


class InputFlow:
    """Opens rounds from requests and turns a round that needs input into its result.

    ``keys`` are the operator's ``state_keys`` (empty: the state directory's key, read on first use, so
    a supervisor that never sees this flow never touches the directory).
    """

    def __init__(self, keys: tuple[str, ...] = (), ttl: float = DEFAULT_TTL) -> None:
        self._keys = keys
        self._ttl = ttl
        self._sealer: Sealer | None = None

    @property
    def sealer(self) -> Sealer:
        """The sealer (made on first use).

        Raises:
            ConfigError: the state directory's key cannot be made or read.
        """
        if self._sealer is None:
            self._sealer = Sealer(load_state_keys(self._keys), self._ttl)
        return self._sealer

    def open(
        self,
        method: str,
        params: Mapping[str, Any],
        supports: Callable[[ClientCapabilities], bool],
        version: str,
        *,
        can_start_task: bool = False,
    ) -> InputRound:
        """The round of this request: the answers of the sealed state and of ``inputResponses``.

        Raises:
            ClientRequestError: -32602, the ``requestState`` is refused (``Sealer.open``).
        """
        token = params.get("requestState")
        responses = params.get("inputResponses")
        if token is None:  # answers the client gives unasked are taken by their key alone
            loose = responses.items() if isinstance(responses, dict) else ()
            return InputRound(
                {key: {"q": None, "r": answer} for key, answer in loose},
                supports,
                version,
                can_start_task=can_start_task,
            )
        state = self.sealer.open(method, params, token, subject_of(current.get()))
        answers = state.get("answers")
        answers = dict(answers) if isinstance(answers, dict) else {}
        asked = state.get("asked")
        if isinstance(asked, dict) and isinstance(responses, dict):
            for key, digest in asked.items():
                if key in responses:
                    answers[key] = {"q": digest, "r": responses[key]}
        return InputRound(answers, supports, version, can_start_task=can_start_task)

    def result(self, round_: InputRound, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``input_required`` result of a round that needs input."""
        state = {"answers": round_.answers, "asked": round_.asked}
        return {
            "resultType": "input_required",
            "inputRequests": round_.pending,
            "requestState": self.sealer.seal(method, params, state, subject_of(current.get())),
        }

    async def run(
        self,
        round_: InputRound,
        method: str,
        params: Mapping[str, Any],
        call: Callable[[], Awaitable[dict[str, Any]]],
        on_start_task: Callable[[InputRound], Awaitable[dict[str, Any]]] | None = None,
    ) -> dict[str, Any]:
        """``call()``'s result, or the ``input_required`` result when the round recorded requests, or
        ``on_start_task(round_)``'s when the function became a task (``ctx.run_as_task()``).

        Raises:
            CallError: the call failed, and not because it needs input or became a task.
        """
        try:
            result = await call()
        except CallError:
            if round_.needs_input:
                return self.result(round_, method, params)
            if round_.start_task and on_start_task is not None:
                return await on_start_task(round_)
            raise
        if round_.needs_input:
            return self.result(round_, method, params)
        if round_.start_task and on_start_task is not None:
            return await on_start_task(round_)
        return result
