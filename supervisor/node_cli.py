"""``python -m supervisor node``: the command line of a node (docs/scaling.md), its settings and keys
checked before anything starts.

Settings come from the same sources as a supervisor's (defaults < ``--config`` < ``MCP_SUPERVISOR_*`` <
flags), with two differences: a runtime runs no worker unless asked (``--workers-trio 2``), and there is
never a task queue. A bad value, a missing key or a key file others may read stops the node with one
line and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from .keys import SECRET_SUFFIX

if TYPE_CHECKING:
    from .config import Settings
    from .node import Node
    from .node_relay import UpstreamOptions

NODE_DEFAULTS = {"workers_asyncio": 0, "workers_trio": 0}
"""A node runs the runtimes it is asked for only."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor node",
        description="Run supervised workers for a remote front: they join its pools over CurveZMQ.",
    )
    parser.add_argument("--config", help="TOML configuration file (the node_* keys and the worker settings)")
    parser.add_argument("--connect", metavar="tcp://HOST:PORT", help="the front's worker_listen")
    parser.add_argument("--server-key", metavar="FILE", help="the front's public key file (NAME.key)")
    parser.add_argument("--key", metavar="FILE", help=f"this node's secret key file (NAME{SECRET_SUFFIX})")
    parser.add_argument("--name", help="this node's name at the front (default: the key file's name)")
    parser.add_argument("--tools", action="append", metavar="MODULE", help="tool module to load (repeatable)")
    parser.add_argument("--workers-asyncio", metavar="N", help="asyncio worker processes (default 0)")
    parser.add_argument("--workers-trio", metavar="N", help="Trio worker processes (default 0)")
    parser.add_argument("--spare-workers", metavar="N", help="ready spare processes per pool (default 1)")
    parser.add_argument("--no-pin", dest="pin_cpus", action="store_false", default=None, help="no pinning")
    parser.add_argument("--log-level", help="debug, info, warning, error or critical")
    parser.add_argument("--log-format", help="text (default) or json")
    parser.add_argument("--shutdown-grace", metavar="SECONDS", help="time in-flight calls get on stop")
    parser.add_argument("--runtime-dir", help="private directory for the workers' ipc socket")
    return parser


def main(argv: list[str]) -> int:
    """Parse ``argv``, check the settings and the keys, run the node; returns the exit code."""
    args = build_parser().parse_args(argv)

    from shared.errors import ConfigError
    from shared.exits import EXIT_STARTUP
    from shared.logformat import configure_logging

    from .config_load import load_settings
    from .node import Node

    overrides: dict[str, Any] = {
        "node_connect": args.connect,
        "node_server_key": args.server_key,
        "node_key": args.key,
        "node_name": args.name,
        "tools": args.tools,
        "workers_asyncio": args.workers_asyncio,
        "workers_trio": args.workers_trio,
        "spare_workers": args.spare_workers,
        "pin_cpus": args.pin_cpus,
        "log_level": args.log_level,
        "log_format": args.log_format,
        "shutdown_grace": args.shutdown_grace,
        "runtime_dir": args.runtime_dir,
        "task_queue": False,
    }

    def settings() -> Settings:
        return load_settings(args.config, overrides=overrides, defaults=NODE_DEFAULTS)

    try:
        loaded = settings()
        upstream = upstream_options(loaded)
        configure_logging(loaded.log_level, loaded.log_format)
        node = Node(loaded, upstream, settings)
    except ConfigError as exc:
        print(f"mcp-supervisor node: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    from .cli import raise_open_files_limit

    raise_open_files_limit()
    return _run(node)


def upstream_options(settings: Settings) -> UpstreamOptions:
    """The front and the keys a node's settings name, the key files read.

    Raises:
        ConfigError: something is missing or unusable, or the node would run no worker.
    """
    from shared.errors import ConfigError

    from .keys import check_name, read_public_key, read_secret_key
    from .node_relay import UpstreamOptions

    missing = [
        flag
        for flag, value in (
            ("--connect (node_connect)", settings.node_connect),
            ("--server-key (node_server_key)", settings.node_server_key),
            ("--key (node_key)", settings.node_key),
        )
        if value is None
    ]
    if missing:
        raise ConfigError(f"a node needs {', '.join(missing)}")
    if not any(settings.worker_counts().values()):
        raise ConfigError("a node needs workers: --workers-trio N and/or --workers-asyncio N")
    assert settings.node_connect and settings.node_key and settings.node_server_key  # checked above
    name = settings.node_name or check_name(settings.node_key.name.removesuffix(SECRET_SUFFIX))
    public, secret = read_secret_key(settings.node_key)
    return UpstreamOptions(
        endpoint=settings.node_connect,
        node=name,
        server_key=read_public_key(settings.node_server_key),
        public_key=public,
        secret_key=secret,
        max_message_size=settings.max_message_size,
    )


def _run(node: Node) -> int:
    import asyncio

    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(node.run())
    return uvloop.run(node.run())
