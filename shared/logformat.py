"""Log output of every process: plain text for people, or one JSON object per line for log shippers.

JSON lines carry ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and, where the event knows
them, ``worker``, ``tool`` and ``call_id`` (pass them in ``extra=``). A worker's lines reach the
supervisor's log through its stderr; in JSON mode the supervisor re-reads each line's fields, so one
stream of JSON objects comes out of the supervisor.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
CONTEXT_FIELDS = ("worker", "tool", "call_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
WORKER_TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (tracebacks included as an ``exception`` string)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in CONTEXT_FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                event[field] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure_logging(level: str, log_format: LogFormat, *, worker: bool = False) -> None:
    """Send this process's log to stderr in ``log_format`` at ``level`` (replacing earlier handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(WORKER_TEXT_FORMAT if worker else TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
