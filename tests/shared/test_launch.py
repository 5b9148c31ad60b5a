"""Tests of shared/launch.py: the worker's command line, written by the supervisor and read by the worker."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.launch import EXIT_OK, EXIT_ORPHANED, EXIT_PROTOCOL, WorkerOptions
from shared.protocol import DEFAULT_MAX_MESSAGE_SIZE, HEARTBEAT_INTERVAL


def minimal(**fields: object) -> WorkerOptions:
    values: dict[str, object] = {
        "worker_id": "asyncio-0",
        "runtime": "asyncio",
        "router": "ipc:///tmp/router.sock",
        "parent_pid": 4242,
        "pool": "asyncio",
    }
    values.update(fields)
    return WorkerOptions(**values)  # type: ignore[arg-type]


def round_trip(options: WorkerOptions) -> WorkerOptions:
    return WorkerOptions.parse(options.runtime, options.to_argv())


def test_default_options_survive_the_command_line() -> None:
    options = minimal()
    assert round_trip(options) == options


def test_every_option_survives_the_command_line() -> None:
    options = WorkerOptions(
        worker_id="trio-queue",
        runtime="trio",
        router="tcp://127.0.0.1:5555",
        parent_pid=1,
        pool="trio-queue",
        modules=("trio_worker.taskqueue.tools", "my.tools"),
        cpu=3,
        service="taskqueue",
        task_db="-odd name.db",
        task_ttl=0.1 + 0.2,
        task_retention=0.0,
        step_max_bytes=65536,
        threads=2,
        heartbeat_interval=0.1,
        max_message_size=1 << 20,
        log_level="debug",
        log_format="json",
        rlimit_nofile=4096,
        rlimit_as=1 << 33,
        user=65534,
        group=65534,
    )
    assert round_trip(options) == options


words = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(
    lambda text: not text.startswith("-")
)


@given(
    worker_id=words,
    runtime=st.sampled_from(["asyncio", "trio"]),
    router=words,
    parent_pid=st.integers(1, 2**22),
    pool=st.one_of(st.none(), words),
    modules=st.lists(words, max_size=3).map(tuple),
    cpu=st.one_of(st.none(), st.integers(0, 255)),
    task_db=st.one_of(
        st.none(), st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1)
    ),
    threads=st.integers(1, 1024),
    heartbeat_interval=st.floats(min_value=1e-3, max_value=60),
    max_message_size=st.integers(1, 2**31),
)
def test_any_options_survive_the_command_line(
    worker_id: str,
    runtime: str,
    router: str,
    parent_pid: int,
    pool: str | None,
    modules: tuple[str, ...],
    cpu: int | None,
    task_db: str | None,
    threads: int,
    heartbeat_interval: float,
    max_message_size: int,
) -> None:
    options = minimal(
        worker_id=worker_id,
        runtime=runtime,
        router=router,
        parent_pid=parent_pid,
        pool=pool or runtime,
        modules=modules,
        cpu=cpu,
        task_db=task_db,
        threads=threads,
        heartbeat_interval=heartbeat_interval,
        max_message_size=max_message_size,
    )
    assert round_trip(options) == options


def test_command_runs_the_runtimes_worker_module() -> None:
    assert minimal(runtime="trio", pool="trio").command()[:2] == ["-m", "trio_worker"]
    assert minimal().command()[2:] == minimal().to_argv()


def test_the_pool_is_written_only_when_it_is_not_the_runtime() -> None:
    assert "--pool" not in minimal().to_argv()
    argv = minimal(runtime="trio", pool="trio-queue").to_argv()
    assert argv[argv.index("--pool") + 1] == "trio-queue"


def test_a_bare_command_line_gives_the_documented_defaults() -> None:
    options = WorkerOptions.parse("trio", ["--worker-id", "trio-0", "--router", "ipc:///r"])
    assert options == WorkerOptions(
        worker_id="trio-0", runtime="trio", router="ipc:///r", parent_pid=os.getppid(), pool="trio"
    )
    assert options.heartbeat_interval == HEARTBEAT_INTERVAL
    assert options.max_message_size == DEFAULT_MAX_MESSAGE_SIZE
    assert options.modules == ()


@pytest.mark.parametrize(
    "argv",
    [
        ["--router", "ipc:///r"],
        ["--worker-id", "w", "--router", "ipc:///r", "--service", "nope"],
        ["--worker-id", "w", "--router", "ipc:///r", "--log-format", "xml"],
    ],
)
def test_a_wrong_command_line_exits_with_the_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        WorkerOptions.parse("asyncio", argv)
    assert exited.value.code == 2
    assert "usage: python -m asyncio_worker" in capsys.readouterr().err


def test_the_identity_names_the_worker_and_this_process() -> None:
    assert minimal().identity == f"asyncio-0/{os.getpid()}".encode()


def test_exit_codes_are_distinct() -> None:
    assert len({EXIT_OK, EXIT_ORPHANED, EXIT_PROTOCOL}) == 3
