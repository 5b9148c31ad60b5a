"""Issue 18, remote workers over CurveZMQ, with real processes: a front (``python -m supervisor`` with
``worker_listen``) in this network namespace and a node (``python -m supervisor node``) in a namespace
each test makes, joined by a veth pair with addresses of 10.231.0.0/16; every namespace and link is
removed, and every process stopped by its pid, when the test ends.

What is checked: a node's tools are served through the front (the official SDK client over HTTP) and
leave its listing with the node; a node whose key is not allowed is refused, logged, and gets no call;
kill -9 and SIGSTOP of a node and a link taken down (``ip link set down``) are survived with every call in
flight answered — the ones on the node at once, a read-only or idempotent one by a retry on the front's
own worker, any other with an error naming the loss — and the node joins again by itself.
"""

from __future__ import annotations

import ast
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import psutil
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from supervisor.keys import write_key_pair
from tests.conftest import REPO, TEST_WORKER_ENV, assert_gone, eventually, text

pytestmark = pytest.mark.anyio

TOOLS = "tests.integration.remote_tools"
JOIN_DEADLINE = 40.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


@dataclass
class Net:
    """A network namespace for a node, and the veth pair that joins it to this one."""

    netns: str
    host_if: str
    host_ip: str
    node_ip: str

    @property
    def inode(self) -> str:
        """How the tools name the namespace (``os.readlink('/proc/self/ns/net')``)."""
        return f"net:[{os.stat(f'/run/netns/{self.netns}').st_ino}]"

    def set_link(self, up: bool) -> None:
        _ip("link", "set", self.host_if, "up" if up else "down")


@pytest.fixture
def net() -> Iterator[Net]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.fail("these tests need root and iproute2 (ip netns): CI runs them as root")
    used = _ip("-o", "-4", "addr", "show").stdout
    for _ in range(100):
        block = random.randrange(1, 16383) * 4  # a /30 of 10.231.0.0/16 no interface of this host uses
        prefix = f"10.231.{block >> 8}."
        host_ip, node_ip = f"{prefix}{(block & 255) + 1}", f"{prefix}{(block & 255) + 2}"
        if f" {host_ip}/" not in used and f" {node_ip}/" not in used:
            break
    tag = f"{os.getpid() % 100000}{random.randrange(100):02d}"
    net = Net(f"mcpsv-{tag}", f"mv{tag}h", host_ip, node_ip)
    _ip("netns", "add", net.netns)
    try:
        _ip("link", "add", net.host_if, "type", "veth", "peer", "name", f"mv{tag}n")
        _ip("link", "set", f"mv{tag}n", "netns", net.netns)
        _ip("addr", "add", f"{host_ip}/30", "dev", net.host_if)
        _ip("link", "set", net.host_if, "up")
        _ip("-n", net.netns, "addr", "add", f"{node_ip}/30", "dev", f"mv{tag}n")
        _ip("-n", net.netns, "link", "set", f"mv{tag}n", "up")
        _ip("-n", net.netns, "link", "set", "lo", "up")
        yield net
    finally:
        _ip("link", "del", net.host_if, check=False)
        _ip("netns", "del", net.netns, check=False)


@dataclass
class Keys:
    front_public: Path
    front_secret: Path
    allowed: Path
    nodes: Path

    def node(self, name: str, allowed: bool = True) -> Path:
        """The secret key file of node ``name``, made the first time (its public key then put in the
        front's allow-list if ``allowed``)."""
        secret = self.nodes / name / f"{name}.key_secret"
        if not secret.exists():
            public, _ = write_key_pair(self.nodes / name, name)
            if allowed:
                shutil.copy(public, self.allowed / public.name)
        return secret


@pytest.fixture
def keys() -> Iterator[Keys]:
    root = Path(tempfile.mkdtemp(prefix="keys-"))
    public, secret = write_key_pair(root / "front", "front")
    (root / "allowed").mkdir(mode=0o700)
    yield Keys(public, secret, root / "allowed", root / "nodes")
    shutil.rmtree(root, ignore_errors=True)


@dataclass
class RunningNode:
    """A ``python -m supervisor node`` in a namespace; ``stop`` ends it by its pid."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tree(self) -> list[int]:
        """The node and every process under it."""
        try:
            return [self.pid, *(child.pid for child in psutil.Process(self.pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def signal_tree(self, sig: int) -> None:
        for pid in self.tree():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        pids = self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"node did not stop within 20 s:\n{self.log()[-3000:]}")
        assert_gone(pids)


@pytest.fixture
def nodes(net: Net, keys: Keys) -> Iterator[Callable[..., RunningNode]]:
    """Start nodes in ``net``'s namespace with ``start(name, front_endpoint)``; all stopped at the end."""
    started: list[RunningNode] = []

    def start(
        name: str, endpoint: str, *, allowed: bool = True, workers: int = 2, spares: int = 0
    ) -> RunningNode:
        secret = keys.node(name, allowed)
        log = tempfile.NamedTemporaryFile(prefix=f"node-{name}-", suffix=".log", delete=False)
        process = subprocess.Popen(
            ["ip", "netns", "exec", net.netns, sys.executable, "-m", "supervisor", "node",
             "--connect", endpoint, "--server-key", str(keys.front_public), "--key", str(secret),
             "--tools", TOOLS, "--workers-trio", str(workers), "--spare-workers", str(spares),
             "--runtime-dir", tempfile.mkdtemp(prefix="nd-") + "/run"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "MCP_SUPERVISOR_WORKER_ENV": TEST_WORKER_ENV},
        )  # fmt: skip
        node = RunningNode(process, Path(log.name))
        started.append(node)
        return node

    yield start
    for node in started:
        print(f"--- log of node pid {node.pid} ---\n{node.log()[-4000:]}")  # shown when the test failed
        if node.process.poll() is None:
            node.signal_tree(signal.SIGCONT)
            node.stop()
        node.log_path.unlink(missing_ok=True)


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


def start_front(
    supervisor_factory: Any, net: Net, keys: Keys, *, local_trio: int, endpoint: str | None = None
) -> tuple[Any, str]:
    """A front listening for workers on ``net``'s host side (on ``endpoint``, else a free port); returns it
    and the endpoint nodes connect to."""
    endpoint = endpoint or f"tcp://{net.host_ip}:{free_port(net.host_ip)}"
    server = supervisor_factory(
        "--tools", TOOLS, "--workers-asyncio", "0", "--workers-trio", str(local_trio), "--spare-workers", "0",
        "--no-task-queue", "--worker-listen", endpoint, "--worker-server-key", str(keys.front_secret),
        "--worker-allowed-keys", str(keys.allowed),
    )  # fmt: skip
    return server, endpoint


def joined(server: Any, node: str, count: int = 2) -> list[dict[str, Any]]:
    """The node's workers at the front once ``count`` of them are routed to (fails after the deadline)."""

    def ready() -> list[dict[str, Any]] | None:
        workers = [
            w for w in server.status()["remote_workers"] if w["node"] == node and w["state"] == "ready"
        ]
        return workers if len(workers) == count else None

    return server.wait_for(ready, f"{count} workers of {node} to join", deadline=JOIN_DEADLINE)  # type: ignore[no-any-return]


def remote_ids(server: Any) -> list[str]:
    return [w["id"] for w in server.status()["remote_workers"]]


# -- served, refused ---------------------------------------------------------------------------------


async def test_a_nodes_tools_are_served_through_the_front_and_leave_with_it(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode]
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=0)
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(server.url, mode="legacy", message_handler=on_message) as session:
        assert "remote_where" not in {t.name for t in (await session.list_tools()).tools}
        node = nodes("node-a", endpoint)
        workers = joined(server, "node-a")
        assert sorted(w["id"] for w in workers) == ["node-a:trio-0", "node-a:trio-1"]
        with anyio.fail_after(10):
            await changed.wait()  # notifications/tools/list_changed: the node's tools arrived
        assert {"remote_where", "remote_hold"} <= {t.name for t in (await session.list_tools()).tools}

    async with Client(server.url, mode="2026-07-28") as client:
        where = (await client.call_tool("remote_where", {})).structured_content
        assert where is not None and where["netns"] == net.inode  # ran in the node's namespace
        assert where["pid"] in {w["pid"] for w in workers}
        assert "joined pool trio" in server.log() and "joined the front at" in node.log()

        node.stop()  # a clean stop: LEAVING, then the connections close
        server.wait_for(lambda: not remote_ids(server), "the node's workers to leave")
        for slot in ("trio-0", "trio-1"):  # a goodbye, not a loss, even when a connection closed before
            assert f"node-a:{slot} (pid" in server.log()  # the front read that worker's LEAVING
        assert server.log().count("on node-a) left") == 2 and "lost its connection" not in server.log()
        assert "remote_where" not in {t.name for t in (await client.list_tools()).tools}


async def test_a_node_whose_key_is_not_allowed_is_refused_logged_and_never_called(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode]
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=0)
    intruder = nodes("intruder", endpoint, allowed=False)
    server.wait_for(
        lambda: f"refused a remote worker from {net.node_ip}: its key" in server.log(),
        "the refusal in the front's log",
    )
    node_log = lambda: intruder.log()  # noqa: E731
    server.wait_for(
        lambda: "the front refused this node's key" in node_log(), "the refusal in the node's log"
    )
    assert remote_ids(server) == []
    async with Client(server.url, mode="2026-07-28") as client:
        assert "remote_where" not in {t.name for t in (await client.list_tools()).tools}
        with pytest.raises(MCPError, match="unknown tool 'remote_where'"):  # no worker anywhere has it
            await client.call_tool("remote_where", {})
    assert "joined the front" not in intruder.log()

    # the same node once its key is allowed: it joins by itself (its next attempt after the backoff)
    shutil.copy(keys.nodes / "intruder" / "intruder.key", keys.allowed / "intruder.key")
    joined(server, "intruder")


async def test_a_node_joins_again_a_front_that_restarts(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode]
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=0)
    node = nodes("node-a", endpoint)
    before = {w["pid"] for w in joined(server, "node-a")}
    assert server.stop() == 0  # its remote workers drained, then told the front is stopping
    again, _ = start_front(supervisor_factory, net, keys, local_trio=0, endpoint=endpoint)
    assert {w["pid"] for w in joined(again, "node-a")} == before  # the same workers: nothing restarted
    async with Client(again.url, mode="2026-07-28") as client:
        where = (await client.call_tool("remote_where", {})).structured_content
    assert where is not None and where["netns"] == net.inode
    assert node.process.poll() is None and "the front sent STOP: the supervisor is stopping" in node.log()


# -- losing a node with calls in flight --------------------------------------------------------------


@dataclass
class Flight:
    """One call in flight: its tool, where it started (its progress), and how it ended."""

    tool: str
    where: dict[str, Any] | None = None
    """Where it first ran (a retry reports where it runs again: ``again``)."""
    again: dict[str, Any] | None = None
    result: Any = None
    error: BaseException | None = None
    done: bool = False


async def calls_in_flight(client: Any, release: Path, tasks: Any, count: int) -> list[Flight]:
    """Start ``count`` held calls one after the other (each once the previous one is running, so that
    the least-loaded choice spreads them over every worker), alternating the idempotent tool and the
    other one; returns them running."""
    flights: list[Flight] = []
    for index in range(count):
        flight = Flight("remote_hold_idempotent" if index % 2 == 0 else "remote_hold")
        running = anyio.Event()

        async def on_progress(
            progress: float,
            total: float | None,
            message: str | None,
            f: Flight = flight,
            e: anyio.Event = running,
        ) -> None:
            where = ast.literal_eval(message or "{}")
            if f.where is None:
                f.where = where
            else:
                f.again = where
            e.set()

        async def call(f: Flight = flight, e: anyio.Event = running) -> None:
            try:
                f.result = await client.call_tool(
                    f.tool, {"release": str(release)}, progress_callback=on_progress
                )
            except Exception as exc:  # noqa: BLE001 - the test reads it
                f.error = exc
            finally:
                f.done = True
                e.set()

        tasks.start_soon(call)
        with anyio.fail_after(20):
            await running.wait()
        flights.append(flight)
    return flights


def check_answers(flights: list[Flight], node_netns: str, front_netns: str, lost: str) -> None:
    """Every call answered: on the node, an idempotent one by the front's worker, another with an error
    naming the loss; on the front, with its own result."""
    on_node = [f for f in flights if f.where and f.where["netns"] == node_netns]
    assert {f.tool for f in on_node} == {"remote_hold", "remote_hold_idempotent"}, [f.where for f in flights]
    for flight in flights:
        assert flight.done and flight.error is None, flight
        result = flight.result
        if flight in on_node and flight.tool == "remote_hold":
            assert result.is_error is True and lost in text(result), text(result)
        elif flight in on_node:  # sent once more, to the front's own worker
            assert flight.again is not None and flight.again["netns"] == front_netns, flight
            assert result.is_error is False, text(result)
            assert result.structured_content["netns"] == front_netns
        else:
            assert result.is_error is False, text(result)
            assert result.structured_content["netns"] == front_netns


async def lose_node_with_calls(
    server: Any, net: Net, tmp_path: Path, lose: Callable[[], None], lost: str
) -> None:
    """Hold calls on every worker, ``lose()`` the node: the node's calls that cannot be retried are
    answered while the others still hold (at once, not after a timeout); then release them all."""
    release = tmp_path / "release"
    front_netns = os.readlink("/proc/self/ns/net")
    async with Client(server.url, mode="2026-07-28") as client, anyio.create_task_group() as tasks:
        flights = await calls_in_flight(client, release, tasks, 9)
        on_node = [f for f in flights if f.where and f.where["netns"] == net.inode]
        lose()
        plain = [f for f in on_node if f.tool == "remote_hold"]
        await eventually(lambda: all(f.done for f in plain), "the node's plain calls to be answered", 15)
        assert not release.exists()
        # the idempotent ones run again on the front's worker, where they hold like the others
        await eventually(lambda: not remote_ids(server), "the node's workers to be dropped", 15)
        release.write_text("go")
    check_answers(flights, net.inode, front_netns, lost)


async def test_kill_9_of_a_node_answers_its_calls_at_once_and_a_new_node_rejoins(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode], tmp_path: Path
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=1)
    node = nodes("node-a", endpoint)
    joined(server, "node-a")
    pids = node.tree()
    await lose_node_with_calls(
        server, net, tmp_path, lambda: os.kill(node.pid, signal.SIGKILL), "lost its connection"
    )
    assert_gone(pids)  # the workers died with their node (parent-death signal)

    again = nodes("node-a", endpoint)
    joined(server, "node-a")
    assert await served_by_node(server, net, tmp_path / "second")
    again.stop()


async def served_by_node(server: Any, net: Net, release: Path) -> bool:
    """Whether a call goes to the node once the front's own worker is busy (the least-loaded choice)."""
    async with Client(server.url, mode="2026-07-28") as client, anyio.create_task_group() as tasks:
        busy = await calls_in_flight(client, release, tasks, 1)
        assert busy[0].where is not None and busy[0].where["netns"] != net.inode  # the front's worker
        where = (await client.call_tool("remote_where", {})).structured_content
        release.write_text("go")
    return where is not None and where["netns"] == net.inode


async def test_sigstop_of_a_node_answers_its_calls_and_it_rejoins_when_continued(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode], tmp_path: Path
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=1)
    node = nodes("node-a", endpoint)
    joined(server, "node-a")
    await lose_node_with_calls(
        server, net, tmp_path, lambda: node.signal_tree(signal.SIGSTOP), "missed its heartbeats"
    )
    node.signal_tree(signal.SIGCONT)
    joined(server, "node-a")  # the same node process, nothing restarted it
    assert node.process.poll() is None
    assert await served_by_node(server, net, tmp_path / "second")


async def test_a_link_taken_down_is_survived_and_the_node_rejoins_when_it_is_up(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode], tmp_path: Path
) -> None:
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=1)
    node = nodes("node-a", endpoint)
    before = {w["pid"] for w in joined(server, "node-a")}
    await lose_node_with_calls(server, net, tmp_path, lambda: net.set_link(False), "missed its heartbeats")
    net.set_link(True)
    after = {w["pid"] for w in joined(server, "node-a")}
    assert after == before  # the same workers joined again: the node's relays made new connections
    assert node.process.poll() is None and "joining again" in node.log()
    assert await served_by_node(server, net, tmp_path / "second")


async def test_a_hung_worker_of_a_node_is_killed_there_and_its_spare_joins_in_its_place(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """The node's own arbiter at work: its heartbeats find a stopped worker, it kills it, the slot adopts
    the node's spare, which joins the front under the slot's name; the front answers the lost call."""
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=0)
    node = nodes("node-a", endpoint, workers=1, spares=1)
    [before] = joined(server, "node-a", count=1)
    release = tmp_path / "release"
    async with Client(server.url, mode="2026-07-28") as client, anyio.create_task_group() as tasks:
        [flight] = await calls_in_flight(client, release, tasks, 1)  # remote_hold_idempotent
        assert flight.where is not None and flight.where["pid"] == before["pid"]
        os.kill(before["pid"], signal.SIGSTOP)  # a hung worker: only the node can tell and kill it
        after = server.wait_for(
            lambda: (w := joined(server, "node-a", count=1)[0])["pid"] != before["pid"] and w,
            "the node's spare to join in the hung worker's place",
        )
        release.write_text("go")
    assert after["id"] == "node-a:trio-0"
    assert flight.again is not None and flight.again["pid"] == after["pid"], text(
        flight.result
    )  # retried on the spare
    assert flight.result.is_error is False
    assert "missed 6 heartbeats" in node.log() and "trio-0 adopted trio-spare-0" in node.log()
    assert_gone([before["pid"]])


async def test_a_node_reload_replaces_its_workers_without_failing_the_call_they_hold(
    supervisor_factory: Any, net: Net, keys: Keys, nodes: Callable[..., RunningNode], tmp_path: Path
) -> None:
    """SIGHUP on a node: new workers join, the old ones send LEAVING (the front routes them nothing new)
    and finish the call they hold, which its client gets whole: the drain waits for the front's calls."""
    server, endpoint = start_front(supervisor_factory, net, keys, local_trio=0)
    node = nodes("node-a", endpoint, workers=1)
    [before] = joined(server, "node-a", count=1)
    release = tmp_path / "release"
    async with Client(server.url, mode="2026-07-28") as client, anyio.create_task_group() as tasks:
        flights = await calls_in_flight(client, release, tasks, 2)  # the plain one cannot be retried
        assert [f.where["pid"] for f in flights if f.where] == [before["pid"]] * 2
        os.kill(node.pid, signal.SIGHUP)
        server.wait_for(
            lambda: (
                {w["pid"]: w["state"] for w in server.status()["remote_workers"]}.get(before["pid"])
                == "draining"
            ),
            "the old worker to leave",
        )
        [after] = [w for w in joined(server, "node-a", count=1) if w["pid"] != before["pid"]] or [None]
        assert after is not None and after["id"] == "node-a:trio-0"
        where = (await client.call_tool("remote_where", {})).structured_content
        assert where is not None and where["pid"] == after["pid"]  # new calls go to the new worker
        release.write_text("go")
    for flight in flights:
        assert flight.result.is_error is False and flight.again is None, text(flight.result)
        assert flight.result.structured_content["pid"] == before["pid"]
    server.wait_for(lambda: remote_ids(server) == ["node-a:trio-0"], "the old worker to be gone")
    assert "lost its connection" not in server.log() and node.process.poll() is None
