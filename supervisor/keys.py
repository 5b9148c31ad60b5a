"""CurveZMQ key pairs for remote workers: ``python -m supervisor keys DIR``, and reading the key files.

A key pair is two certificate files in the format of pyzmq and czmq (``zmq.auth``): ``NAME.key`` holds the
public key, ``NAME.key_secret`` the public and the secret key. The front's pair proves the front to its
nodes (each node is given the front's ``.key``); a node's pair proves the node to the front, whose
``worker_allowed_keys`` directory holds the ``.key`` of every node it accepts: the name of that file is
the node's name on the front (docs/scaling.md).

Guarantees: both files are written mode 0600 in a directory of mode 0700, never over an existing file; a
secret key file that other users may read, or a file that holds no valid key, is refused with one line
naming the file (``ConfigError``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import socket
import stat
import sys
from pathlib import Path

from shared.errors import ConfigError

PUBLIC_SUFFIX = ".key"
SECRET_SUFFIX = ".key_secret"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
"""A node's name: it prefixes its workers' ids (``node-a:trio-0``), so no ``:`` or ``/``."""
KEY_LENGTH = 40
"""A Curve25519 key in Z85: 32 bytes as 40 characters."""


def check_name(name: str) -> str:
    """``name`` when it can name a node or a key pair.

    Raises:
        ConfigError: it cannot (the message says what is allowed).
    """
    if not NAME.match(name):
        raise ConfigError(
            f"invalid name {name!r}: 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def default_name() -> str:
    """This host's short name, made a valid key name (``node`` when nothing of it is usable)."""
    short = re.sub(r"[^A-Za-z0-9_.-]", "-", socket.gethostname().split(".")[0]).strip("-.")[:63]
    return short if short and NAME.match(short) else "node"


def write_key_pair(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair as ``directory/name.key`` and ``directory/name.key_secret`` (both 0600),
    creating ``directory`` with mode 0700 if needed; returns the two paths (public, secret).

    Raises:
        ConfigError: a bad name, an existing directory that is not private to this user, a file that
            already exists (nothing is overwritten), or the files cannot be written.
    """
    import zmq

    check_name(name)
    _private_directory(directory)
    public, secret = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    for path in (public, secret):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path} already exists: a key pair is never overwritten")
    public_key, secret_key = zmq.curve_keypair()
    written: list[Path] = []
    try:
        _write_new(secret, _certificate(public_key, secret_key))
        written.append(secret)
        _write_new(public, _certificate(public_key, None))
        written.append(public)
    except OSError as exc:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        raise ConfigError(f"cannot write the key pair in {directory}: {exc.strerror or exc}") from None
    return public, secret


def read_public_key(path: Path) -> bytes:
    """The public key (Z85) of the certificate file ``path`` (a ``.key``, or a ``.key_secret``).

    Raises:
        ConfigError: the file cannot be read or holds no valid public key.
    """
    public, _ = _read(path)
    return public


def read_secret_key(path: Path) -> tuple[bytes, bytes]:
    """The ``(public, secret)`` keys (Z85) of the secret certificate file ``path``.

    Raises:
        ConfigError: the file cannot be read, other users may read it, or it holds no valid key pair.
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"secret key file {str(path)!r} cannot be read: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(
            f"secret key file {str(path)!r} is readable by other users (mode {mode:04o}): chmod 600 it"
        )
    public, secret = _read(path)
    if secret is None:
        raise ConfigError(f"{str(path)!r} holds no secret key: give the {SECRET_SUFFIX} file of the pair")
    return public, secret


def allowed_keys(directory: Path) -> tuple[dict[bytes, str], list[str]]:
    """The public keys of the ``*.key`` files in ``directory``: key (Z85) → name (the file's stem), and a
    line for each file that was skipped (not a valid key, a bad name, or a key two files hold: it would
    have two names, so neither is used).

    Raises:
        ConfigError: ``directory`` cannot be listed.
    """
    if not directory.is_dir():
        raise ConfigError(f"worker_allowed_keys {str(directory)!r} is not a directory")
    try:
        paths = sorted(path for path in directory.iterdir() if path.name.endswith(PUBLIC_SUFFIX))
    except OSError as exc:
        raise ConfigError(f"worker_allowed_keys {str(directory)!r} cannot be read: {exc.strerror}") from None
    names: dict[bytes, list[str]] = {}
    skipped = []
    for path in paths:
        name = path.name[: -len(PUBLIC_SUFFIX)]
        try:
            check_name(name)
            names.setdefault(read_public_key(path), []).append(name)
        except ConfigError as exc:
            skipped.append(f"skipping {path.name}: {exc}")
    for same in (found for found in names.values() if len(found) > 1):
        files = " and ".join(f"{name}{PUBLIC_SUFFIX}" for name in same)
        skipped.append(f"skipping {files}: they hold the same key (a node has one name)")
    return {key: found[0] for key, found in names.items() if len(found) == 1}, skipped


def _read(path: Path) -> tuple[bytes, bytes | None]:
    from zmq.auth.certs import load_certificate
    from zmq.utils import z85

    try:
        public, secret = load_certificate(path)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "no public key in it"
        raise ConfigError(f"key file {str(path)!r} cannot be read: {reason}") from None
    for key in (public, secret):
        if key is None:
            continue
        try:
            valid = len(key) == KEY_LENGTH and len(z85.decode(key)) == 32
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:
            raise ConfigError(f"key file {str(path)!r} holds a key that is not 40 characters of Z85")
    return public, secret


def _certificate(public: bytes, secret: bytes | None) -> bytes:
    """A certificate file in the ZPL format of czmq and pyzmq (``zmq.auth.load_certificate`` reads it)."""
    kind = "secret" if secret is not None else "public"
    lines = [
        f"#   ZeroMQ CURVE {kind} certificate written by python -m supervisor keys",
        "#   the secret file must stay private: never copy it off its host" if secret else "#",
        "metadata",
        "curve",
        f'    public-key = "{public.decode()}"',
    ]
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return ("\n".join(lines) + "\n").encode()


def _write_new(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, content)
    finally:
        os.close(fd)


def _private_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot create {directory}: {exc.strerror}") from None
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{directory} is not a directory")
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != os.getuid() or mode != 0o700:
        raise ConfigError(
            f"{directory} must be a directory of this user with mode 0700 (it is mode {mode:04o}, "
            f"uid {info.st_uid}): key pairs are written only in a private directory"
        )


def main(argv: list[str]) -> int:
    """``python -m supervisor keys DIR [--name NAME]``; returns the exit code."""
    from shared.exits import EXIT_OK, EXIT_USAGE

    parser = argparse.ArgumentParser(
        prog="python -m supervisor keys",
        description="Write a CurveZMQ key pair for a front (worker_listen) or a node: DIR/NAME.key (public) "
        "and DIR/NAME.key_secret (secret), both 0600, in DIR (0700). Never overwrites.",
    )
    parser.add_argument("directory", metavar="DIR", help="private directory to write the pair in")
    parser.add_argument(
        "--name", help="the pair's name; a node's name on the front (default: this host's short name)"
    )
    args = parser.parse_args(argv)
    try:
        public, secret = write_key_pair(Path(args.directory), args.name or default_name())
    except ConfigError as exc:
        print(f"mcp-supervisor: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"public key: {public}\nsecret key: {secret} (keep it on this host only)")
    return EXIT_OK
