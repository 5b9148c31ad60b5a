"""``python -m supervisor ctl``: control a running supervisor through its control socket.

Exit codes (``shared.exits``): 0 done; 1 the supervisor refused or the command failed (the reason is
printed); 2 usage; 6 no supervisor is listening there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.exits import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE

from .control import request
from .rundir import CONTROL_NAME, default_runtime_dir

JSON_HELP = "print the answer as JSON (for scripts)"


def add_target_options(parser: argparse.ArgumentParser, *, suppress: bool = False) -> None:
    """``--port`` / ``--runtime-dir``: which supervisor to talk to (shared with ``top``).

    ``suppress``: leave an option out of the namespace when it is not given, so that a subcommand's copy
    does not overwrite what was given before the subcommand.
    """
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--port",
        type=int,
        default=argparse.SUPPRESS if suppress else 8001,
        help="the HTTP port of the supervisor (default 8001)",
    )
    where.add_argument(
        "--runtime-dir",
        type=Path,
        default=argparse.SUPPRESS if suppress else None,
        help="its runtime directory (stdio servers, custom dirs)",
    )


SYSTEMD_RUNTIME_DIR = Path("/run/mcp-supervisor")
"""Where the packaged systemd unit (RuntimeDirectory=mcp-supervisor) puts the sockets."""


def control_path(args: argparse.Namespace) -> Path:
    """The control socket: of ``--runtime-dir``, else of the instance on ``--port``, else the systemd
    service's (an operator's shell does not see the service's $RUNTIME_DIRECTORY)."""
    if args.runtime_dir is not None:
        return Path(args.runtime_dir) / CONTROL_NAME
    path = default_runtime_dir(f"http-{args.port}") / CONTROL_NAME
    if not path.exists() and (SYSTEMD_RUNTIME_DIR / CONTROL_NAME).exists():
        return SYSTEMD_RUNTIME_DIR / CONTROL_NAME
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m supervisor ctl", description="Control a running supervisor."
    )
    add_target_options(parser)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    # the same options after the command: ``ctl status --json`` as well as ``ctl --json status``
    common = argparse.ArgumentParser(add_help=False)
    add_target_options(common, suppress=True)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("status", parents=[common], help="workers, states, figures")
    commands.add_parser("reload", parents=[common], help="re-read the configuration and replace every worker")
    restart = commands.add_parser(
        "restart", parents=[common], help="replace the workers of a runtime, or one worker"
    )
    restart.add_argument("target", help="asyncio, trio, or a worker id such as trio-0")
    scale = commands.add_parser("scale", parents=[common], help="run N workers of a runtime")
    scale.add_argument("runtime", choices=["asyncio", "trio"])
    scale.add_argument("count", type=int)
    release = commands.add_parser(
        "release", parents=[common], help="lift the quarantine of a tool that kept crashing its worker"
    )
    release.add_argument("tool", help="the quarantined tool's name (ctl status lists them)")
    commands.add_parser("stop", parents=[common], help="stop gracefully")
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    command: dict[str, Any] = {"command": args.command}
    if args.command == "restart":
        command["target"] = args.target
    elif args.command == "scale":
        command.update(runtime=args.runtime, count=args.count)
    elif args.command == "release":
        command["tool"] = args.tool
    path = control_path(args)
    try:
        answer = request(path, command)
    except (ConnectionError, OSError) as exc:
        print(f"mcp-supervisor ctl: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    if args.json:
        print(json.dumps(answer, indent=2))
    elif not answer.get("ok"):
        print(f"mcp-supervisor ctl: {args.command} failed: {answer.get('error')}", file=sys.stderr)
    elif args.command == "status":
        print(render_status(answer["result"]))
    else:
        print(f"{args.command}: {answer['result']}")
    return EXIT_OK if answer.get("ok") else EXIT_FAILED


def render_status(status: dict[str, Any]) -> str:
    """A plain-text summary of the status document, one line per worker."""
    me = status["supervisor"]
    lines = [
        f"supervisor pid {me['pid']} {me['state']}, up {me['uptime_seconds']:.0f} s, "
        f"{me['tools']} tools, {me['calls']} calls, {_mb(me.get('rss_bytes'))}"
    ]
    for runtime, info in status["runtimes"].items():
        lines.append(f"  {runtime}: {_readiness(runtime, info, status['workers'])}")
    for worker in status["workers"]:
        lines.append(
            f"  {worker['id']:<12} pid {worker['pid'] or '-':<7} {worker['state']:<9} "
            f"cpu {_pct(worker.get('cpu_percent'))} mem {_mb(worker.get('rss_bytes'))} "
            f"in-flight {worker['in_flight']} served {worker['calls_served']} failed {worker['calls_failed']} "
            f"restarts {worker['restarts']}"
            + (f" (last: {worker['last_exit']})" if worker["last_exit"] else "")
        )
    for entry in status.get("quarantined") or []:
        lines.append(
            f"  QUARANTINED {entry['tool']} ({entry['pool']}, worker deaths {entry['deaths']}): "
            f"tried again in {entry['retry_in_seconds']:.0f} s (ctl release {entry['tool']} to lift it now)"
        )
    for error in status["load_errors"]:
        lines.append(f"  load error: {error}")
    return "\n".join(lines)


def _readiness(runtime: str, info: dict[str, Any], workers: list[dict[str, Any]]) -> str:
    """``ready``, ``scaled to 0`` (no worker of it is meant to run), or ``NOT READY:`` and why."""
    if info["ready"]:
        return "ready"
    if info["failure"] is not None:
        return f"NOT READY: {info['failure']}"
    if not any(worker["pool"] == runtime for worker in workers):
        return "scaled to 0"
    return "NOT READY: no worker of it is ready yet"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1048576:.0f} MB"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
