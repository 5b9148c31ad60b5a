"""``python -m supervisor node``'s checks before anything starts (supervisor/node_cli.py): what is missing
or unusable stops it with one line and exit code 2; its name comes from its key file."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config_load import load_settings
from supervisor.keys import read_public_key, write_key_pair
from supervisor.node_cli import NODE_DEFAULTS, main, upstream_options


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    """The front's public key file and a node's secret key file."""
    front, _ = write_key_pair(tmp_path / "front", "front")
    _, node = write_key_pair(tmp_path / "node", "node-a")
    return front, node


def refusal(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcp-supervisor node: error: ") and err.count("\n") == 1, err
    return err


def test_a_node_needs_its_front_and_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    err = refusal(capsys, ["--workers-trio", "1"])
    assert "a node needs --connect (node_connect), --server-key (node_server_key), --key (node_key)" in err


def test_a_node_needs_workers(capsys: pytest.CaptureFixture[str], key_files: tuple[Path, Path]) -> None:
    front, node = key_files
    err = refusal(
        capsys, ["--connect", "tcp://127.0.0.1:5601", "--server-key", str(front), "--key", str(node)]
    )
    assert "a node needs workers: --workers-trio N and/or --workers-asyncio N" in err


def test_a_node_key_others_may_read_is_refused(
    capsys: pytest.CaptureFixture[str], key_files: tuple[Path, Path]
) -> None:
    front, node = key_files
    node.chmod(0o640)
    argv = ["--connect", "tcp://127.0.0.1:5601", "--server-key", str(front), "--key", str(node)]
    assert "readable by other users (mode 0640)" in refusal(capsys, [*argv, "--workers-trio", "1"])


def test_a_bad_endpoint_is_refused_naming_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    err = refusal(capsys, ["--connect", "front:5601", "--workers-trio", "1"])
    assert "invalid node_connect = 'front:5601' on the command line: must be tcp://HOST:PORT" in err


def test_the_node_is_named_after_its_key_file_and_never_runs_a_task_queue(
    key_files: tuple[Path, Path],
) -> None:
    front, node = key_files
    settings = load_settings(
        overrides={
            "node_connect": "tcp://10.0.0.1:5601",
            "node_server_key": str(front),
            "node_key": str(node),
            "workers_trio": "2",
            "task_queue": False,
        },
        environ={},
        defaults=NODE_DEFAULTS,
    )
    upstream = upstream_options(settings)
    assert upstream.node == "node-a" and upstream.server_key == read_public_key(front)
    assert settings.worker_counts() == {"asyncio": 0, "trio": 2} and not settings.task_queue
    named = upstream_options(settings.model_copy(update={"node_name": "gpu-1"}))
    assert named.node == "gpu-1"
