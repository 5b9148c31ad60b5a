"""``python -m supervisor``: parse the command line, load the settings, run until stopped."""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
from collections.abc import Coroutine
from typing import Any

from shared.errors import ConfigError
from shared.logformat import configure_logging

from . import __version__
from .app import EXIT_STARTUP, Supervisor, bind_socket
from .config import load_settings

try:  # uvloop is optional: a faster loop when it is installed
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None  # type: ignore[assignment]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor",
        description="Serve MCP tools from supervised asyncio and Trio worker processes.",
        epilog="Also: 'python -m supervisor ctl --help' to control a running supervisor, "
        "'python -m supervisor top' to watch one.",
    )
    parser.add_argument("--version", action="version", version=f"mcp-supervisor {__version__}")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--stdio", action="store_true", help="serve MCP over stdin/stdout instead of HTTP")
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=str, help="TCP port (default 8001)")
    parser.add_argument("--tools", action="append", metavar="MODULE", help="tool module to load (repeatable)")
    parser.add_argument(
        "--workers-asyncio", type=str, metavar="N", help="asyncio worker processes (default 1)"
    )
    parser.add_argument("--workers-trio", type=str, metavar="N", help="Trio worker processes (default 1)")
    parser.add_argument(
        "--spare-workers",
        type=str,
        metavar="N",
        help="ready processes kept per pool to replace a dead or hung worker at once (default 1, 0: off)",
    )
    parser.add_argument(
        "--no-pin", dest="pin_cpus", action="store_false", default=None, help="do not pin workers to cores"
    )
    parser.add_argument("--log-level", help="debug, info, warning, error or critical")
    parser.add_argument("--log-format", help="text (default) or json: one JSON object per line")
    parser.add_argument("--request-timeout", type=str, metavar="SECONDS", help="longest a tool call may take")
    parser.add_argument("--max-connections", type=str, metavar="N", help="concurrent HTTP connections")
    parser.add_argument(
        "--shutdown-grace", type=str, metavar="SECONDS", help="time in-flight calls get on stop"
    )
    parser.add_argument("--runtime-dir", help="private directory for the ipc sockets")
    parser.add_argument("--task-db", metavar="PATH", help="the task queue's SQLite database")
    parser.add_argument(
        "--task-ttl", type=str, metavar="SECONDS", help="how long MCP tasks are kept after they end"
    )
    parser.add_argument(
        "--task-retention",
        type=str,
        metavar="SECONDS",
        help="how long finished queue tasks and workflows are kept",
    )
    parser.add_argument(
        "--no-task-queue",
        dest="task_queue",
        action="store_false",
        default=None,
        help="do not run the task queue",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main

        sys.exit(ctl_main(argv[1:]))
    if argv[:1] == ["top"]:
        from .top import main as top_main

        sys.exit(top_main(argv[1:]))
    args = build_parser().parse_args(argv)
    overrides = {
        "host": args.host,
        "port": args.port,
        "tools": args.tools,
        "workers_asyncio": args.workers_asyncio,
        "workers_trio": args.workers_trio,
        "pin_cpus": args.pin_cpus,
        "spare_workers": args.spare_workers,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "request_timeout": args.request_timeout,
        "max_connections": args.max_connections,
        "shutdown_grace": args.shutdown_grace,
        "runtime_dir": args.runtime_dir,
        "task_db": args.task_db,
        "task_queue": args.task_queue,
        "task_ttl": args.task_ttl,
        "task_retention": args.task_retention,
    }
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as exc:
        _fail(str(exc))
    configure_logging(settings.log_level, settings.log_format)
    raise_open_files_limit()
    try:
        sock = None if args.stdio else bind_socket(settings.host, settings.port)
        instance = f"stdio-{os.getpid()}" if sock is None else f"http-{sock.getsockname()[1]}"
        supervisor = Supervisor(
            settings, instance, reload_settings=lambda: load_settings(args.config, overrides=overrides)
        )
    except ConfigError as exc:
        _fail(str(exc))
    if sock is None:
        code = _run(supervisor.run_stdio())
    else:
        code = _run(supervisor.run_http(sock))
    sys.exit(code)


def raise_open_files_limit() -> None:
    """Lift the soft limit on open files to the hard one: every connection and worker pipe is a file,
    and the usual soft limit (1024) is below the default max_connections."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # a container that forbids it: the soft limit stays, and is reported by /status (open_fds)


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    if uvloop is not None:
        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def _fail(message: str) -> None:
    print(f"mcp-supervisor: error: {message}", file=sys.stderr)
    sys.exit(EXIT_STARTUP)
