"""Helpers shared by every test directory: starting and stopping a real supervisor process, the two test
tiers and the Hypothesis profiles.

Tiers: every test that starts a process (a supervisor, its ``ctl`` or ``top`` command, a stdio server)
is marked ``slow`` at collection, by what it does rather than by name (see ``is_slow``); so is every test
under ``tests/integration/`` and ``tests/conformance/``. ``pytest -m "not slow"`` is the unit tier,
plain ``pytest`` runs everything.

Spares: the supervisors the tests start keep no warm spare workers (``MCP_SUPERVISOR_SPARE_WORKERS=0``
in ``spawn_supervisor``'s and ``stdio_server``'s environment), since each spare is one more interpreter
competing for the machine's cores and most tests never lose a worker. A test about spares, or whose
assertions rely on a spare being promoted, asks for them: ``--spare-workers 1`` (a flag beats the
environment) or ``env={"MCP_SUPERVISOR_SPARE_WORKERS": "1"}``; ``SPARES`` holds the flag.

Hypothesis: the profile named by ``HYPOTHESIS_PROFILE`` decides how many examples a ``@given`` test runs:
``dev`` (the default) is quick, ``ci`` (set by ``.ci/run``) runs the full counts.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
START_DEADLINE = 30.0
STOP_DEADLINE = 20.0

settings.register_profile("dev", max_examples=25)
settings.register_profile("ci", max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "dev")

SLOW_DIRECTORIES = frozenset({"integration", "conformance"})
"""Directories of ``tests/`` whose every test starts real processes."""

_current_test: pytest.Item | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)  # before fixtures are set up: a module-scoped one may start a supervisor
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _current_test
    _current_test = item


def is_slow(item: pytest.Item) -> bool:
    """True for a test under a ``SLOW_DIRECTORIES`` directory, one marked ``slow`` by hand, and one that
    starts a process: every process the tests start is a Python interpreter (``sys.executable``), so a
    test is slow when its body, one of its fixtures, or a test helper they call (followed through the
    functions defined under ``tests/``) reads ``sys.executable``."""
    if item.get_closest_marker("slow") is not None:
        return True
    if any(item.path.is_relative_to(TESTS / directory) for directory in SLOW_DIRECTORIES):
        return True
    function = getattr(item, "function", None)
    if function is None:
        return False
    function = getattr(getattr(function, "hypothesis", None), "inner_test", function)  # under @given
    fixture_info = getattr(item, "_fixtureinfo", None)
    fixtures = fixture_info.name2fixturedefs.values() if fixture_info is not None else []
    functions = [function, *(definition.func for definitions in fixtures for definition in definitions)]
    seen: set[types.FunctionType] = set()
    return any(_starts_an_interpreter(f, seen) for f in functions)


def _starts_an_interpreter(function: Any, seen: set[types.FunctionType]) -> bool:
    function = getattr(function, "__func__", function)  # a bound fixture method
    if not isinstance(function, types.FunctionType) or not _in_tests(function):
        return False
    if function in seen:
        return False
    seen.add(function)
    names = _names(function.__code__)
    if "executable" in names:
        return True
    return any(_starts_an_interpreter(function.__globals__.get(name), seen) for name in names)


def _in_tests(function: types.FunctionType) -> bool:
    return Path(function.__code__.co_filename).is_relative_to(TESTS)


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names ``code`` reads, with those of the functions and lambdas in it."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names(constant)
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningSupervisor:
    """A ``python -m supervisor`` process started by a test; ``stop()`` ends it by its PID."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    children: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, timeout=10)

    def try_get(self, path: str) -> httpx.Response | None:
        """``get``, or ``None`` while the server is not listening yet."""
        try:
            return self.get(path)
        except httpx.HTTPError:
            return None

    def status(self) -> dict[str, Any]:
        return self.get("/status").json()  # type: ignore[no-any-return]

    def worker(self, worker_id: str) -> dict[str, Any]:
        return next(w for w in self.status()["workers"] if w["id"] == worker_id)

    def wait_for(self, predicate: Any, what: str, deadline: float = 20.0) -> Any:
        """Poll ``predicate()`` until it returns something truthy, or fail naming ``what``."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = predicate()
            if value:
                return value
            if self.process.poll() is not None:
                pytest.fail(
                    f"supervisor exited with {self.process.returncode} while waiting for {what}:\n{self.log()}"
                )
            time.sleep(0.05)
        pytest.fail(f"timed out after {deadline} s waiting for {what}:\n{self.log()[-4000:]}")

    def wait_ready(self) -> None:
        def ready() -> bool:
            response = self.try_get("/readyz")
            return response is not None and response.status_code == 200

        self.wait_for(ready, "/readyz to answer 200", START_DEADLINE)
        self.children = [child.pid for child in psutil.Process(self.pid).children(recursive=True)]

    def kill_tree(self) -> list[int]:
        """SIGKILL the supervisor and every process under it at once, by pid (each worker has a session
        of its own, so a process group would not reach them); returns the pids, which ``stop`` then
        checks are gone."""
        everyone = [self.pid, *(child.pid for child in psutil.Process(self.pid).children(recursive=True))]
        for pid in everyone:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(10)
        self.children = everyone
        return everyone

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the supervisor, wait for it, and check none of its children outlived it."""
        if self.process.poll() is None:
            self.children = sorted(
                set(self.children)
                | {child.pid for child in psutil.Process(self.pid).children(recursive=True)}
            )
            self.process.send_signal(sig)
        try:
            code = self.process.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"supervisor did not stop within {STOP_DEADLINE} s:\n{self.log()[-4000:]}")
        assert_gone(self.children)
        return code


def assert_gone(pids: list[int], deadline: float = 5.0) -> None:
    """Every pid has exited (zombies still waiting for a reaper count as exited)."""
    end = time.monotonic() + deadline
    alive: list[int] = []
    while time.monotonic() < end:
        alive = [pid for pid in pids if _alive(pid)]
        if not alive:
            return
        time.sleep(0.05)
    for pid in alive:  # do not leave strays behind, then fail
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    pytest.fail(f"processes still alive: {alive}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


NO_SPARES = {"MCP_SUPERVISOR_SPARE_WORKERS": "0"}
"""The tests' default: no warm spares (see the module docstring); a test's own env or flags override it."""

SPARES = ("--spare-workers", "1")
"""The flags of a test that needs the product's default of one warm spare per pool."""

TEST_WORKER_ENV = "PATH,HOME,LANG,LC_*,TZ,TMPDIR,PYTHON*,VIRTUAL_ENV,XDG_*,STATE_DIRECTORY,IT_*"
"""The ``worker_env`` of the tests' supervisors: the defaults plus ``IT_*``, the markers test tools read."""


def _test_state_home() -> str:
    """A state directory of the test run's own (the request-state key), never the user's."""
    global _state_home
    if _state_home is None:
        _state_home = tempfile.mkdtemp(prefix="state-")
    return _state_home


_state_home: str | None = None


def spawn_supervisor(
    *args: str,
    env: dict[str, str] | None = None,
    wait: bool = True,
    own_task_db: bool = True,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> RunningSupervisor:
    """Start ``python -m supervisor`` on a free loopback port; waits for readiness unless ``wait=False``.
    Unless ``own_task_db=False`` (or the args name one), it gets a task database of its own. ``wrap`` may
    put the command in another one that execs it (``tests.unprivileged.reachable``).
    Fails a test that is not marked ``slow`` (one that reaches here in a way ``is_slow`` cannot see)."""
    if _current_test is not None and _current_test.get_closest_marker("slow") is None:
        pytest.fail(f"{_current_test.nodeid} starts a supervisor: mark it @pytest.mark.slow")
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="supervisor-", suffix=".log", delete=False)
    if own_task_db and "--task-db" not in args and "--no-task-queue" not in args:
        # every supervisor of the tests gets a task database of its own (the default one is per user)
        args = (*args, "--task-db", os.path.join(tempfile.mkdtemp(prefix="tasks-"), "tasks.db"))
    command = [sys.executable, "-m", "supervisor", "--port", str(port), *args]
    process = subprocess.Popen(
        command if wrap is None else wrap(command),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "XDG_STATE_HOME": _test_state_home(),
            "MCP_SUPERVISOR_WORKER_ENV": TEST_WORKER_ENV,
            **NO_SPARES,
            **(env or {}),
        },
    )
    running = RunningSupervisor(process, port, Path(log.name))
    if wait:
        running.wait_ready()
    return running


@pytest.fixture
def supervisor_factory() -> Iterator[Any]:
    """Start supervisors with ``factory(*args)``; every one is stopped (by PID) when the test ends."""
    started: list[RunningSupervisor] = []

    def factory(*args: str, **kwargs: Any) -> RunningSupervisor:
        running = spawn_supervisor(*args, **kwargs)
        started.append(running)
        return running

    yield factory
    for running in started:
        if running.process.poll() is None:
            running.stop()
        Path(running.log_path).unlink(missing_ok=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A real PostgreSQL server for the session (``tests/pgserver.py``); ``postgres.database()`` makes a
    fresh database and returns its URL. Stopped by its pid when the session ends."""
    from tests.pgserver import PostgresServer

    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


def text(result: Any) -> str:
    """The text content of a CallToolResult, joined."""
    return "".join(block.text for block in result.content if block.type == "text")


async def call_during(
    client: Any,
    tool: str,
    arguments: dict[str, Any],
    action: Callable[[], object],
    *,
    deadline: float = 15.0,
) -> Any:
    """Start ``tool``, run ``action()`` once the tool has reported its first progress (so it is surely
    running in its worker), and return the call's result. Fails the test after ``deadline`` seconds."""
    import anyio

    started = anyio.Event()
    results: list[Any] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def call() -> None:
        results.append(await client.call_tool(tool, arguments, progress_callback=on_progress))

    with anyio.fail_after(deadline):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(call)
            await started.wait()
            action()
    return results[0]


async def eventually(predicate: Callable[[], object], what: str, deadline: float = 20.0) -> None:
    """Poll ``predicate()`` without blocking the event loop (tasks of the test keep running) until it is
    truthy; fail naming ``what`` after ``deadline`` seconds."""
    import anyio

    with anyio.move_on_after(deadline):
        while not predicate():
            await anyio.sleep(0.01)
        return
    pytest.fail(f"timed out after {deadline} s waiting for {what}")


def stdio_server(tools: str = "tests.integration.call_tools", env: dict[str, str] | None = None) -> Any:
    """How a desktop client starts the supervisor over stdio: with ``tools``, a task database of its
    own, no warm spares unless ``env`` asks for them, and quiet logs on stderr."""
    from mcp import StdioServerParameters
    from mcp.client.stdio import get_default_environment

    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "supervisor",
            "--stdio",
            "--task-db",
            os.path.join(tempfile.mkdtemp(prefix="tasks-"), "tasks.db"),
            "--tools",
            tools,
            "--log-level",
            "warning",
        ],  # fmt: skip
        cwd=str(REPO),
        env={
            **NO_SPARES,
            **(env or {**get_default_environment(), "XDG_STATE_HOME": _test_state_home()}),
            "MCP_SUPERVISOR_WORKER_ENV": TEST_WORKER_ENV,
        },
    )
