"""Key pairs for remote workers (supervisor/keys.py, ``python -m supervisor keys``): private files in a
private folder, never overwritten; a secret others may read, or a file without a key, is refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq.auth

from shared.errors import ConfigError
from supervisor import keys


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_key_pair_is_two_private_files_in_a_private_folder_that_pyzmq_reads(tmp_path: Path) -> None:
    os.umask(0o022)
    public, secret = keys.write_key_pair(tmp_path / "keys", "node-a")
    assert (public.name, secret.name) == ("node-a.key", "node-a.key_secret")
    assert mode(tmp_path / "keys") == 0o700 and mode(public) == 0o600 and mode(secret) == 0o600
    public_key, none = zmq.auth.load_certificate(public)
    same_public, secret_key = zmq.auth.load_certificate(secret)
    assert none is None and public_key == same_public and secret_key is not None
    assert keys.read_secret_key(secret) == (public_key, secret_key)
    assert keys.read_public_key(public) == public_key


def test_a_key_pair_is_never_overwritten(tmp_path: Path) -> None:
    public, secret = keys.write_key_pair(tmp_path / "k", "front")
    before = secret.read_bytes()
    with pytest.raises(ConfigError, match="already exists: a key pair is never overwritten"):
        keys.write_key_pair(tmp_path / "k", "front")
    assert secret.read_bytes() == before and public.exists()


def test_keys_are_written_only_in_a_private_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    with pytest.raises(ConfigError, match="must be a directory of this user with mode 0700"):
        keys.write_key_pair(shared, "front")
    assert list(shared.iterdir()) == []


@pytest.mark.parametrize("name", ["", "a:b", "a/b", "-lead", "x" * 64])
def test_a_name_that_cannot_name_a_node_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="invalid name"):
        keys.write_key_pair(tmp_path / "k", name)


def test_a_secret_key_others_may_read_is_refused(tmp_path: Path) -> None:
    _, secret = keys.write_key_pair(tmp_path / "k", "front")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by other users \(mode 0644\): chmod 600 it"):
        keys.read_secret_key(secret)


def test_a_public_key_file_is_not_a_secret_key(tmp_path: Path) -> None:
    public, _ = keys.write_key_pair(tmp_path / "k", "front")
    with pytest.raises(ConfigError, match="holds no secret key"):
        keys.read_secret_key(public)


@pytest.mark.parametrize(
    "content", ["", 'curve\n    public-key = "short"\n', "just text\n"], ids=["empty", "short", "text"]
)
def test_a_file_without_a_valid_key_is_refused_naming_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content)
    with pytest.raises(ConfigError, match="bad.key"):
        keys.read_public_key(path)


def test_the_allow_list_names_each_key_after_its_file_and_skips_what_it_cannot_use(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for name in ("node-a", "node-b"):
        public, _ = keys.write_key_pair(tmp_path / name, name)
        (allowed / public.name).write_bytes(public.read_bytes())
    (allowed / "broken.key").write_text("nothing here\n")
    (allowed / "copy.key").write_bytes((allowed / "node-a.key").read_bytes())
    (allowed / "notes.txt").write_text("not a key file\n")
    found, skipped = keys.allowed_keys(allowed)
    assert list(found.values()) == ["node-b"]  # node-a's key is in two files: ambiguous, so not used
    assert found[keys.read_public_key(allowed / "node-b.key")] == "node-b"
    assert len(skipped) == 2 and any("broken.key" in line for line in skipped)
    assert any("copy.key and node-a.key: they hold the same key" in line for line in skipped)


def test_an_allow_list_that_is_not_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a directory"):
        keys.allowed_keys(tmp_path / "missing")


def test_the_keys_command_writes_a_pair_and_refuses_to_overwrite_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert keys.main([str(tmp_path / "k"), "--name", "front"]) == 0
    assert "front.key_secret" in capsys.readouterr().out
    assert keys.main([str(tmp_path / "k"), "--name", "front"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mcp-supervisor: error: ") and err.count("\n") == 1 and "already exists" in err


def test_the_default_name_is_usable() -> None:
    assert keys.check_name(keys.default_name())
