"""Unit tests of supervisor/request_state.py and supervisor/state_keys.py: sealing request states."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shared.errors import INVALID_PARAMS, ClientRequestError, ConfigError
from supervisor import request_state
from supervisor.request_state import Sealer, params_digest
from supervisor.state_keys import KEY_FILE_NAME, load_state_keys

KEY_A = b"a" * 32
KEY_B = b"b" * 40
PARAMS = {"name": "greet", "arguments": {"who": "x"}, "_meta": {"k": 1}}


def test_a_sealed_state_opens_for_the_same_request_and_is_opaque() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("tools/call", PARAMS, {"answers": {"secret-answer": 1}})
    assert "secret-answer" not in token
    retry = {**PARAMS, "_meta": {"other": 2}, "inputResponses": {"x": {}}, "requestState": token}
    assert sealer.open("tools/call", retry, token) == {"answers": {"secret-answer": 1}}


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t + "A",
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: "v2" + t[2:],
        lambda t: "",
    ],
)
def test_a_tampered_state_is_refused(change: object) -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("tools/call", PARAMS, {})
    with pytest.raises(ClientRequestError) as raised:
        sealer.open("tools/call", PARAMS, change(token))  # type: ignore[operator]
    assert raised.value.code == INVALID_PARAMS
    assert str(raised.value).startswith("invalid requestState: ")


def test_a_state_of_another_method_or_other_params_is_refused() -> None:
    sealer = Sealer([KEY_A])
    token = sealer.seal("tools/call", PARAMS, {})
    for method, params in [
        ("prompts/get", PARAMS),
        ("tools/call", {**PARAMS, "arguments": {"who": "y"}}),
        ("tools/call", {**PARAMS, "name": "other"}),
    ]:
        with pytest.raises(ClientRequestError, match="belongs to another request"):
            sealer.open(method, params, token)


def test_an_expired_state_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sealer = Sealer([KEY_A], ttl=10)
    now = 1_000_000.0
    monkeypatch.setattr(request_state.time, "time", lambda: now)
    token = sealer.seal("tools/call", PARAMS, {})
    now += 9.9
    assert sealer.open("tools/call", PARAMS, token) == {}
    now += 0.2
    with pytest.raises(ClientRequestError, match="expired"):
        sealer.open("tools/call", PARAMS, token)


def test_rotation_the_first_key_seals_every_key_opens() -> None:
    old = Sealer([KEY_A])
    token = old.seal("tools/call", PARAMS, {"n": 1})
    rotated = Sealer([KEY_B, KEY_A])
    assert rotated.open("tools/call", PARAMS, token) == {"n": 1}
    new_token = rotated.seal("tools/call", PARAMS, {"n": 2})
    with pytest.raises(ClientRequestError, match="integrity"):
        old.open("tools/call", PARAMS, new_token)
    with pytest.raises(ClientRequestError, match="integrity"):
        Sealer([KEY_B]).open("tools/call", PARAMS, token)  # the old key retired


def test_a_non_string_state_is_refused() -> None:
    with pytest.raises(ClientRequestError, match="not a string"):
        Sealer([KEY_A]).open("tools/call", PARAMS, 12)


def test_the_digest_leaves_out_what_changes_between_rounds() -> None:
    assert params_digest(PARAMS) == params_digest({**PARAMS, "_meta": None, "requestState": "x"})
    assert params_digest(PARAMS) != params_digest({**PARAMS, "arguments": {}})


def test_the_default_key_is_made_once_private_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    first = load_state_keys((), directory)
    assert load_state_keys((), directory) == first
    assert len(first) == 1 and len(first[0]) >= 32
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(directory / KEY_FILE_NAME).st_mode) == 0o600


def test_configured_keys_win_and_must_be_long(tmp_path: Path) -> None:
    assert load_state_keys(("k" * 32, "j" * 33), tmp_path) == [b"k" * 32, b"j" * 33]
    assert not (tmp_path / KEY_FILE_NAME).exists()
    with pytest.raises(ConfigError, match=r"state_keys\[1\]"):
        load_state_keys(("k" * 32, "short"), tmp_path)


def test_a_state_is_bound_to_its_principal() -> None:
    """Issue 16: another principal's retry is refused, as is a state sealed without one."""
    sealer = Sealer([b"k" * 32])
    params = {"name": "t", "arguments": {}}
    token = sealer.seal("tools/call", params, {"answers": {}}, "alice")
    assert sealer.open("tools/call", params, token, "alice") == {"answers": {}}
    for other in ("mallory", None):
        with pytest.raises(ClientRequestError, match="another principal"):
            sealer.open("tools/call", params, token, other)
