"""Every setting is documented: in docs/configuration.md's table and in the shipped deploy/mcp-supervisor.toml,
where a commented-out line shows the default (issue 17: ``task_queue``, ``task_db`` and ``fast_path`` were
missing, and the TOML showed a heartbeat of 1.0 s when the default was 0.4 s)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from supervisor.config import Settings
from supervisor.config_load import load_settings

REPO = Path(__file__).resolve().parents[2]
TABLES = {
    ("workers", "asyncio"): "workers_asyncio",
    ("workers", "trio"): "workers_trio",
    ("tools", "modules"): "tools",
}
COMMENTED = re.compile(r"^# (\w+ = .*)$")


def documented_keys() -> list[str]:
    text = (REPO / "docs" / "configuration.md").read_text()
    table = text.split("## Settings", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)


def shipped_toml() -> tuple[dict[str, Any], dict[str, Any]]:
    """The settings set in deploy/mcp-supervisor.toml, and those of its commented-out lines."""
    path = REPO / "deploy" / "mcp-supervisor.toml"
    active: dict[str, Any] = {}
    for key, value in tomllib.loads(path.read_text()).items():
        if isinstance(value, dict):
            active.update({TABLES[(key, inner)]: v for inner, v in value.items()})
        else:
            active[key] = value
    commented: dict[str, Any] = {}
    table: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("["):
            table = line.strip("[]")
        elif match := COMMENTED.match(line):
            [(key, value)] = tomllib.loads(match.group(1)).items()
            commented[TABLES[(table, key)] if table else key] = value
    return active, commented


def test_every_setting_is_in_the_documented_table_once() -> None:
    keys = documented_keys()
    assert sorted(keys) == sorted(Settings.model_fields), set(keys) ^ set(Settings.model_fields)


def test_every_setting_is_in_the_shipped_toml_with_its_default() -> None:
    active, commented = shipped_toml()
    assert set(active) | set(commented) == set(Settings.model_fields), (
        set(Settings.model_fields) - set(active) - set(commented)
    )
    for key, value in commented.items():
        default = Settings.model_fields[key].default
        if default is not None:  # otherwise the line is an example
            shown = tuple(value) if isinstance(value, list) else value
            assert shown == default, f"{key}: the TOML shows {value!r}, the default is {default!r}"


def test_the_shipped_toml_loads() -> None:
    load_settings(REPO / "deploy" / "mcp-supervisor.toml", environ={})
