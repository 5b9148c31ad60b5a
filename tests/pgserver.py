"""A real PostgreSQL server for the tests: Debian's binaries, ``initdb`` into a private temporary directory,
listening only on a unix socket in that directory, run as the ``postgres`` user when the tests run as
root (PostgreSQL refuses root) and stopped by its pid.

``PostgresServer.start()`` returns once the server accepts connections; ``database()`` makes a fresh,
empty schema and returns a ``postgresql://`` URL whose ``search_path`` is that schema; ``stop()`` ends the server (SIGINT: a fast
shutdown, then SIGKILL if it lingers) and removes its directory. The server runs without ``fsync``: the
tests check the task queue's logic, not the durability of PostgreSQL's own disk writes (the benchmark's
server keeps ``fsync`` on).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

START_DEADLINE = 30.0
STOP_DEADLINE = 20.0
SERVER_USER = "postgres"
FAST_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off")


def binary(name: str) -> str:
    """The path of a PostgreSQL program: on ``PATH``, else in Debian's ``/usr/lib/postgresql/N/bin``."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (Debian: apt-get install postgresql); the task queue's "
            "PostgreSQL tests need a real server"
        )
    return candidates[0]


class PostgresServer:
    """One PostgreSQL server of the test session (see the module docstring)."""

    def __init__(self, *, durable: bool = False) -> None:
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._user: str | None = SERVER_USER if os.geteuid() == 0 else None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def url(self, database: str = "postgres") -> str:
        user = self._user or pwd.getpwuid(os.geteuid()).pw_name
        return f"postgresql://{user}@/{database}?host={self.socket_dir}"

    def _own(self, *paths: Path) -> None:
        if self._user is None:
            return
        entry = pwd.getpwnam(self._user)
        for path in paths:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> PostgresServer:
        """initdb and start the server; returns once it accepts connections.

        Raises:
            RuntimeError: a program is missing, initdb failed or the server did not come up.
        """
        self.root.chmod(0o711)
        self.socket_dir.mkdir(mode=0o700)
        self._own(self.root, self.socket_dir)
        initdb = subprocess.run(
            [binary("initdb"), "-D", str(self.data), "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True,
            user=self._user,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed: {initdb.stderr.decode(errors='replace')[-2000:]}")
        settings = ["listen_addresses=", f"unix_socket_directories={self.socket_dir}", "max_connections=300"]
        if not self.durable:
            settings += FAST_SETTINGS
        argv = [binary("postgres"), "-D", str(self.data)]
        for setting in settings:
            argv += ["-c", setting]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                user=self._user,
            )
        end = time.monotonic() + START_DEADLINE
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log_text()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return self
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres did not accept connections within {START_DEADLINE} s")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def database(self, prefix: str = "t") -> str:
        """A fresh, empty place for a task queue: a new schema of the ``tests`` database, named by the
        URL's ``search_path`` (a schema costs nothing; a database copies its template). Returns the URL."""
        name = f"{prefix}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'tests'").fetchone():
                conn.execute("CREATE DATABASE tests")
        with psycopg.connect(self.url("tests"), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url('tests')}&options=-csearch_path%3D{name}"

    def stop(self) -> None:
        """Stop the server by its pid (fast shutdown, then SIGKILL) and remove its directory."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
