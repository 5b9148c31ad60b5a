"""Settings: sources in rising precedence, and one-line refusals naming key, value and source."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from supervisor.config import load_settings


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
