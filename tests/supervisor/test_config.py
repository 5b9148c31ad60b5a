"""Settings: sources in rising precedence, what they decide (the worker slots), and one-line refusals
naming key, value and source, down to the command line's exit."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import ConfigError
from supervisor import cli
from supervisor.arbiter import Arbiter
from supervisor.config import ENV_PREFIX
from supervisor.config_load import load_settings


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert (settings.host, settings.port, settings.workers_asyncio, settings.workers_trio) == (
        "127.0.0.1",
        8001,
        1,
        1,
    )
    assert settings.task_queue is True and settings.pin_cpus is True


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    config.write_text('port = 9000\nrequest_timeout = 5\n[workers]\ntrio = 3\n[tools]\nmodules = ["a.b"]\n')
    settings = load_settings(
        config,
        environ={"MCP_SUPERVISOR_PORT": "9100", "MCP_SUPERVISOR_TOOLS": "x, y.z"},
        overrides={"port": 9200},
    )
    assert settings.port == 9200  # the flag wins over the environment and the file
    assert settings.tools == ("x", "y.z")  # the environment wins over the file; lists are comma-separated
    assert settings.workers_trio == 3 and settings.request_timeout == 5


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MCP_SUPERVISOR_PORT": "70000"}, "invalid port = '70000' from MCP_SUPERVISOR_PORT"),
        ({"MCP_SUPERVISOR_PIN_CPUS": "perhaps"}, "invalid pin_cpus = 'perhaps' from MCP_SUPERVISOR_PIN_CPUS"),
        ({"MCP_SUPERVISOR_NOPE": "1"}, "unknown environment variable MCP_SUPERVISOR_NOPE"),
        (
            {"MCP_SUPERVISOR_RESTART_BACKOFF_MAX": "0.01"},
            "invalid configuration: restart_backoff_max (0.01) must not be below restart_backoff_initial (0.1)",
        ),
        (
            {"MCP_SUPERVISOR_WORKER_LISTEN": "10.0.0.1:5601"},
            "invalid worker_listen = '10.0.0.1:5601' from MCP_SUPERVISOR_WORKER_LISTEN: must be tcp://HOST:PORT",
        ),
        (
            {"MCP_SUPERVISOR_NODE_CONNECT": "tcp://front:99999"},
            "invalid node_connect = 'tcp://front:99999' from MCP_SUPERVISOR_NODE_CONNECT: must be tcp://HOST:PORT",
        ),
        (
            {"MCP_SUPERVISOR_WORKER_LISTEN": "tcp://0.0.0.0:5601"},
            "invalid configuration: worker_listen needs worker_server_key (this front's secret key file) and "
            "worker_allowed_keys",
        ),
        (
            {"MCP_SUPERVISOR_NODE_NAME": "a:b"},
            "invalid node_name = 'a:b' from MCP_SUPERVISOR_NODE_NAME: 1 to 63",
        ),
    ],
)
def test_refusals_are_one_line_naming_the_problem(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_key_and_bad_toml_in_the_file(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="unknown config key 'colour'"):
        load_settings(unknown, environ={})
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(broken, environ={})
    table = tmp_path / "table.toml"
    table.write_text("[workers]\ngo = 2\n")
    with pytest.raises(ConfigError, match="unknown config key 'workers.go'"):
        load_settings(table, environ={})


class StandInRouter:
    endpoint = "ipc:///nonexistent/router.sock"


def test_the_file_and_the_environment_decide_the_worker_slots(tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    config.write_text(
        'request_timeout = 5\n[workers]\nasyncio = 2\ntrio = 1\n[tools]\nmodules = ["tests.integration.call_tools"]\n'
    )
    settings = load_settings(config, environ={"MCP_SUPERVISOR_WORKERS_TRIO": "2"})
    assert settings.request_timeout == 5 and settings.tools == ("tests.integration.call_tools",)
    workers = Arbiter(settings, StandInRouter()).workers  # the slots /status lists
    assert sorted(workers) == ["asyncio-0", "asyncio-1", "trio-0", "trio-1", "trio-queue"]


def test_the_environment_is_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_SUPERVISOR_WORKERS_TRIO", "4")
    assert load_settings().workers_trio == 4


def test_a_bad_value_in_the_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[workers]\nasyncio = 'many'\n")
    with pytest.raises(ConfigError, match=f"invalid workers_asyncio = 'many' in {bad}"):
        load_settings(bad, environ={})


def test_the_command_line_reads_the_config_file_and_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in [key for key in os.environ if key.startswith(ENV_PREFIX)]:
        monkeypatch.delenv(key)
    bad = tmp_path / "bad.toml"
    bad.write_text("[workers]\nasyncio = 'many'\n")
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", str(bad)])  # refused before logging, sockets or workers are set up
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"mcp-supervisor: error: invalid workers_asyncio = 'many' in {bad}: ")


def test_state_keys_are_a_list_of_long_secrets_never_echoed() -> None:
    keys = "a" * 32 + "," + "b" * 40
    assert load_settings(environ={"MCP_SUPERVISOR_STATE_KEYS": keys}).state_keys == ("a" * 32, "b" * 40)
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"MCP_SUPERVISOR_STATE_KEYS": "shortsecret"})
    assert "shortsecret" not in str(refused.value)
    assert "fewer than 32" in str(refused.value)
    assert "a" * 32 not in repr(load_settings(environ={"MCP_SUPERVISOR_STATE_KEYS": keys}))


def test_task_ttl_and_retention_come_from_any_source_and_reach_only_the_queue_worker(tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    config.write_text("task_ttl = 60\n")
    settings = load_settings(config, environ={"MCP_SUPERVISOR_TASK_RETENTION": "0"})
    assert (settings.task_ttl, settings.task_retention) == (60.0, 0.0)
    assert load_settings(environ={}).task_ttl == 3600.0
    assert load_settings(environ={}, overrides={"task_ttl": "5"}).task_ttl == 5.0
    with pytest.raises(ConfigError, match="invalid task_ttl"):
        load_settings(environ={"MCP_SUPERVISOR_TASK_TTL": "-1"})
    workers = Arbiter(settings, StandInRouter()).workers
    queue_argv = workers["trio-queue"].argv
    assert queue_argv[queue_argv.index("--task-ttl") + 1] == "60.0"
    assert queue_argv[queue_argv.index("--task-retention") + 1] == "0.0"
    assert "--task-ttl" not in workers["trio-0"].argv


def test_a_postgresql_task_db_reaches_the_queue_worker_without_its_password_on_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://mcp:s%40cret@db.internal:5432/tasks?sslmode=require"
    monkeypatch.setenv("PGSSLROOTCERT", "/etc/ssl/db.pem")
    settings = load_settings(environ={"MCP_SUPERVISOR_TASK_DB": url}, overrides={"task_lease_seconds": "5"})
    assert settings.task_db == url and settings.task_lease_seconds == 5.0
    workers = Arbiter(settings, StandInRouter()).workers
    queue = workers["trio-queue"]
    assert "--task-db=postgresql://mcp@db.internal:5432/tasks?sslmode=require" in queue.argv
    assert not any("s%40cret" in argument or "s@cret" in argument for argument in queue.argv)
    assert queue.argv[queue.argv.index("--task-lease-seconds") + 1] == "5.0"
    assert queue.extra_env == {"PGPASSWORD": "s@cret"} and "PG*" in queue.env
    assert workers["trio-0"].extra_env == {} and "PG*" not in workers["trio-0"].env
    assert "s@cret" not in repr(queue)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgresql:tasks", "a PostgreSQL database is named by a postgresql://... URL"),
        ("  ", "must be a path or a postgresql:// URL, not empty"),
    ],
)
def test_a_task_db_that_is_neither_a_path_nor_a_url_is_refused(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid task_db") as refused:
        load_settings(environ={"MCP_SUPERVISOR_TASK_DB": value})
    assert message in str(refused.value)


def test_a_tool_file_path_is_accepted_and_made_absolute_issue_17(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(environ={}, overrides={"tools": ["./my_tools.py", "pkg.tools"]})
    assert settings.tools == (str(Path.cwd() / "my_tools.py"), "pkg.tools")


def test_a_tool_file_whose_name_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ConfigError, match="a tool file's name must be a Python identifier"):
        load_settings(environ={}, overrides={"tools": ["my-tools.py"]})


def test_a_body_limit_not_below_the_frame_limit_is_refused_naming_both_issue_17() -> None:
    """A body the front accepted could make a frame the router drops."""
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={}, overrides={"max_body_size": 8192, "max_message_size": 8192})
    assert str(refused.value) == (
        "invalid configuration: max_body_size (8192) must be below max_message_size (8192): "
        "a request body travels to the worker in one message"
    )
    assert load_settings(environ={}, overrides={"max_body_size": 8191, "max_message_size": 8192})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"MCP_SUPERVISOR_WORKER_USER": "no-such-user-here", "MCP_SUPERVISOR_TASK_QUEUE": "false"},
            "invalid worker_user = 'no-such-user-here' from MCP_SUPERVISOR_WORKER_USER: no user "
            "'no-such-user-here' on this system",
        ),
        (
            {"MCP_SUPERVISOR_WORKER_USER": "root", "MCP_SUPERVISOR_TASK_QUEUE": "false"},
            "invalid worker_user = 'root' from MCP_SUPERVISOR_WORKER_USER: the workers cannot run as root",
        ),
        (
            {"MCP_SUPERVISOR_WORKER_USER": "nobody", "MCP_SUPERVISOR_WORKER_GROUP": "no-such-group-here"},
            "invalid worker_group = 'no-such-group-here' from MCP_SUPERVISOR_WORKER_GROUP: no group",
        ),
        ({"MCP_SUPERVISOR_WORKER_GROUP": "nogroup"}, "invalid configuration: worker_group needs worker_user"),
        ({"MCP_SUPERVISOR_WORKER_USER": "nobody"}, "invalid configuration: worker_user needs task_db"),
    ],
)
def test_worker_user_refusals_are_one_line(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_worker_user_may_be_a_name_or_a_number(tmp_path: Path) -> None:
    config = tmp_path / "mcp.toml"
    config.write_text(f'worker_user = 65534\nworker_group = "nogroup"\ntask_db = "{tmp_path}/q/tasks.db"\n')
    settings = load_settings(config, environ={})
    assert (settings.worker_user, settings.worker_group) == ("65534", "nogroup")
    assert load_settings(environ={"MCP_SUPERVISOR_WORKER_USER": "nobody", "MCP_SUPERVISOR_TASK_QUEUE": "0"})
