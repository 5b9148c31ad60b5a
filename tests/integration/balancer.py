"""A real HAProxy for the tests, running the shipped ``deploy/haproxy.cfg``.

``render`` makes the test's copy of that file: the same file with its addresses replaced by the test's
loopback ports, its log sent to HAProxy's stderr (a file the test reads) and its admin socket in the
test's directory; when the tests do not run as root, the lines that need root (``chroot``, ``user``,
``group``) are left out. Each replaced line must be found exactly once, so a change to the shipped file
that these tests would not exercise fails them instead.

``Balancer`` starts ``haproxy -db`` (foreground) on that copy, reads its log lines and asks its admin
socket for the servers' state; ``stop()`` ends it by its pid.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

SHIPPED = REPO / "deploy" / "haproxy.cfg"
PUBLIC_HOST = "mcp.example.com"
"""The public name of the shipped file, kept by the tests: clients send it as their Host."""
START_DEADLINE = 15.0
LOG_LINE = re.compile(
    r"(?P<client>\S+) \[(?P<accepted>[^\]]+)\] (?P<frontend>\S+) (?P<backend>[^/\s]+)/(?P<server>\S+) "
    r"(?P<TR>-?\d+)/(?P<Tw>-?\d+)/(?P<Tc>-?\d+)/(?P<Tr>-?\d+)/(?P<Ta>\+?-?\d+) (?P<status>-?\d+) "
    r"(?P<bytes>\+?\d+) (?P<termination>\S{4}) (?P<conns>\S+) (?P<queues>\S+) (?P<request_id>\S+) "
    r"\{(?P<method>[^}]*)\} \"(?P<request>[^\"]*)\""
)
"""One line of the shipped ``log-format``."""


def haproxy_binary() -> str:
    """The path of ``haproxy``; skips the test when it is not installed (``.ci/run`` installs it)."""
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path is None:
        pytest.skip("haproxy is not installed (Debian's package; .ci/run installs it)")
    return path


def render(shipped: str, *, port: int, fronts: list[int], admin_socket: Path) -> str:
    """The test's copy of the shipped configuration (see the module's docstring)."""
    replacements = {
        "    bind 127.0.0.1:8000\n": f"    bind 127.0.0.1:{port}\n",
        "    log /dev/log local0\n": "    log stderr format raw local0\n",
        "    stats socket /run/haproxy/admin.sock mode 600 level admin\n": (
            f"    stats socket {admin_socket} mode 600 level admin\n"
        ),
    }
    for index, front in enumerate(fronts, start=1):
        replacements[f"    server front{index} 127.0.0.1:{8000 + index}\n"] = (
            f"    server front{index} 127.0.0.1:{front}\n"
        )
    if os.geteuid() != 0:
        for line in ("    chroot /var/lib/haproxy\n", "    user haproxy\n", "    group haproxy\n"):
            replacements[line] = ""
    text = shipped
    for old, new in replacements.items():
        if text.count(old) != 1:
            pytest.fail(f"deploy/haproxy.cfg should have {old.strip()!r} exactly once")
        text = text.replace(old, new)
    return text


@dataclass
class LogLine:
    """One request as HAProxy logged it."""

    server: str
    """The front that answered, or the last one tried (``<NOSRV>`` when none was)."""
    connect_ms: int
    """Tc: how long the connection to ``server`` took to be established; -1 when it never was."""
    status: int
    termination: str
    """The termination state (``----`` for a normal end; its first letter says who ended it)."""
    retries: str
    """%rc: retries made (``+N`` when the request was redispatched to another front)."""
    request_id: str
    method: str
    """The Mcp-Method header."""


@dataclass
class Balancer:
    """A running ``haproxy -db`` started by a test."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def requests(self) -> dict[str, LogLine]:
        """Every request logged so far, by request id."""
        lines = {}
        for match in LOG_LINE.finditer(self.log()):
            line = LogLine(
                server=match["server"],
                connect_ms=int(match["Tc"]),
                status=int(match["status"]),
                termination=match["termination"],
                retries=match["conns"].rsplit("/", 1)[1],
                request_id=match["request_id"],
                method=match["method"],
            )
            lines[line.request_id] = line
        return lines

    def logged(self, request_id: str, deadline: float = 10.0) -> LogLine:
        """The log line of one request, once HAProxy has written it (at the end of the exchange, which
        may come just after the client got its answer); fails after ``deadline`` seconds."""
        end = time.monotonic() + deadline
        while (line := self.requests().get(request_id)) is None:
            if time.monotonic() > end:
                pytest.fail(f"no log line for request {request_id}:\n{self.log()[-3000:]}")
            time.sleep(0.02)
        return line

    def admin(self, command: str) -> str:
        """One command on the admin socket (``show stat``, ``disable server mcp/front1``, ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.directory / "admin.sock"))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self) -> dict[str, str]:
        """The state of each front as the backend sees it (``UP``, ``DOWN``, ``MAINT``, ``UP 1/2``...)."""
        rows = self.admin("show stat").splitlines()
        header = rows[0].lstrip("# ").split(",")
        states = {}
        for row in rows[1:]:
            fields = dict(zip(header, row.split(","), strict=False))
            if fields.get("pxname") == "supervisors" and fields.get("svname", "").startswith("front"):
                states[fields["svname"]] = fields["status"]
        return states

    def wait_for_states(self, wanted: dict[str, str], deadline: float = 20.0) -> None:
        """Poll the admin socket until every named front is in the wanted state; fail after ``deadline``."""
        end = time.monotonic() + deadline
        states: dict[str, str] = {}
        while time.monotonic() < end:
            states = self.server_states()
            if all(states.get(name) == state for name, state in wanted.items()):
                return
            time.sleep(0.05)
        pytest.fail(f"the fronts are {states}, not {wanted}, after {deadline} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s; by pid."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_balancer(fronts: list[int], directory: Path) -> Balancer:
    """``haproxy -db`` on a free loopback port in front of ``fronts`` (ports), with the rendered copy of
    the shipped configuration checked first (``haproxy -c``); returns once it listens."""
    binary = haproxy_binary()
    port = free_port()
    config = directory / "haproxy.cfg"
    config.write_text(
        render(SHIPPED.read_text(), port=port, fronts=fronts, admin_socket=directory / "admin.sock")
    )
    check = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True)
    if check.returncode != 0:
        pytest.fail(f"haproxy -c refused the rendered configuration:\n{check.stdout}{check.stderr}")
    log_path = directory / "haproxy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    balancer = Balancer(process, port, directory, log_path)
    end = time.monotonic() + START_DEADLINE
    while time.monotonic() < end:
        if process.poll() is not None:
            pytest.fail(f"haproxy exited with {process.returncode}:\n{balancer.log()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return balancer
        except OSError:
            time.sleep(0.05)
    balancer.stop()
    pytest.fail(f"haproxy did not listen within {START_DEADLINE} s:\n{balancer.log()}")
