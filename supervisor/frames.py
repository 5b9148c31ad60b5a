"""The frames the router sends, within ``max_message_size``.

A worker's socket drops a frame over its ``ZMQ_MAXMSGSIZE`` (and the connection with it) without a word to
either side, so the router never sends one (``fitting_frame``): a CALL that would be too large fails its
call at once, and a REPLY is replaced by an error REPLY saying why, so that the tool or the task run
waiting for it fails instead of waiting for its deadline. Any other message that large is
not sent and is logged. Worker → router, ``ToolHost.result_frame`` and ``WorkerCore.request`` keep the
same rule.
"""

from __future__ import annotations

import logging

from shared.errors import INTERNAL_ERROR, InvalidArgumentsError
from shared.protocol import Call, Message, Reply, encode, too_large

logger = logging.getLogger("mcp_supervisor.router")


def fitting_frame(message: Message, limit: int) -> bytes | None:
    """The frame of ``message``; for one over ``limit`` bytes, an error REPLY in place of a REPLY, or
    None (logged) for any other message but a CALL.

    Raises:
        InvalidArgumentsError: a CALL over ``limit`` bytes (its arguments are too large).
    """
    frame = encode(message)
    if len(frame) <= limit:
        return frame
    if isinstance(message, Call):
        what = f"the arguments of {message.kind.replace('_', ' ')} {message.tool!r}"
        raise InvalidArgumentsError(too_large(what, len(frame), limit))
    reason = too_large(f"the {type(message).__name__.upper()} frame", len(frame), limit)
    if isinstance(message, Reply):
        return encode(Reply(message.request_id, None, {"code": INTERNAL_ERROR, "message": reason}))
    logger.error("not sent: %s", reason)
    return None
