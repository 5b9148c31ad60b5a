"""What importing shared/zmqio loads: each shim its own loop only, and ``shared`` none of it.

Each check runs in a fresh interpreter, so modules the test session already imported do not hide a load.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


def modules_loaded_by(statement: str, names: list[str]) -> set[str]:
    """Which of ``names`` are in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    probe = f"import sys\n{statement}\nprint(' '.join(n for n in {names!r} if n in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("statement", "absent"),
    [
        ("import shared", ["shared.zmqio", "trio", "asyncio"]),
        ("import shared.zmqio", ["shared.zmqio.core", "trio", "asyncio"]),
        ("import shared.zmqio.asyncio_socket", ["trio", "shared.zmqio.trio_socket", "asyncio_worker"]),
        ("import shared.zmqio.trio_socket", ["asyncio", "shared.zmqio.asyncio_socket", "trio_worker"]),
        ("import supervisor.router", ["asyncio_worker", "trio_worker", "trio"]),
    ],
)
def test_an_import_loads_only_what_it_needs(statement: str, absent: list[str]) -> None:
    assert modules_loaded_by(statement, absent) == set()


def test_the_probe_sees_a_loaded_module() -> None:
    assert modules_loaded_by("import shared.zmqio.trio_socket", ["trio", "shared.zmqio.core"]) == {
        "trio",
        "shared.zmqio.core",
    }
