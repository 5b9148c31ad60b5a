"""Where the settings come from: a TOML file, ``MCP_SUPERVISOR_*`` environment variables and the command
line, merged in rising precedence into one validated ``Settings`` (``config.py``), or one line saying what
is wrong and where it came from."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pydantic

from shared.errors import ConfigError

from .config import ENV_PREFIX, Settings

_TABLES = {
    ("workers", "asyncio"): "workers_asyncio",
    ("workers", "trio"): "workers_trio",
    ("tools", "modules"): "tools",
}
_SECRET_KEYS = {"state_keys", "auth_client_secret"}
"""Never echoed in an error message."""
_LIST_KEYS = {
    "tools",
    "allowed_hosts",
    "allowed_origins",
    "state_keys",
    "auth_required_scopes",
    "auth_authorization_servers",
    "worker_env",
}


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources in rising precedence and validate; ``defaults`` replace built-in defaults (a
    node runs no worker of a runtime unless told to).

    Raises:
        ConfigError: unreadable file, unknown key or invalid value; the message is one line.
    """
    values: dict[str, Any] = dict(defaults or {})
    sources: dict[str, str] = dict.fromkeys(values, "by default")
    if config_file is not None:
        for key, value in _read_toml(Path(config_file)).items():
            values[key] = value
            sources[key] = f"in {config_file}"
    for key, value in _from_environment(os.environ if environ is None else environ).items():
        values[key] = value
        sources[key] = f"from {ENV_PREFIX}{key.upper()}"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            sources[key] = "on the command line"
    try:
        return Settings(**values)
    except pydantic.ValidationError as exc:
        raise ConfigError(_describe(exc, values, sources)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only with a file: 0.16 MB of resident memory a supervisor started without one never needs

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                target = _TABLES.get((key, inner))
                if target is None:
                    raise ConfigError(
                        f"unknown config key '{key}.{inner}' in {path}; allowed tables: [workers] asyncio/trio, "
                        "[tools] modules"
                    )
                flat[target] = inner_value
        elif key in Settings.model_fields:
            flat[key] = value
        else:
            raise ConfigError(
                f"unknown config key {key!r} in {path}; allowed: {', '.join(Settings.model_fields)}"
            )
    return flat


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key not in Settings.model_fields:
            raise ConfigError(
                f"unknown environment variable {name}; allowed keys: {', '.join(Settings.model_fields)}"
            )
        values[key] = [item.strip() for item in raw.split(",") if item.strip()] if key in _LIST_KEYS else raw
    return values


def _describe(exc: pydantic.ValidationError, values: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    error = exc.errors(include_url=False)[0]
    if not error["loc"]:  # a rule across several keys
        return f"invalid configuration: {error['msg'].removeprefix('Value error, ')}"
    key = str(error["loc"][0])
    if error["type"] == "extra_forbidden":
        return f"unknown config key {key!r}; allowed: {', '.join(Settings.model_fields)}"
    field = Settings.model_fields.get(key)
    allowed = f" ({field.description})" if field is not None and field.description else ""
    message = error["msg"]
    if error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    shown = "(secret)" if key in _SECRET_KEYS else repr(values.get(key))
    return f"invalid {key} = {shown} {sources.get(key, '')}: {message}{allowed}".replace("  ", " ")
