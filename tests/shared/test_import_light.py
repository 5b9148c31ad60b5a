"""``import shared`` is what a tool module does: it must load neither an event loop's code nor the worker's
machinery, and nothing under ``shared/`` may import the supervisor or a worker package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import shared

SHARED_DIR = Path(shared.__file__).resolve().parent
FORBIDDEN_FOR_TOOLS = ("asyncio", "trio", "zmq", "supervisor", "asyncio_worker", "trio_worker")
"""Top-level modules ``import shared`` must not load."""
FORBIDDEN_SUBPACKAGES = ("shared.worker", "shared.zmqio")
"""Parts of ``shared`` that only the worker processes load."""
APPLICATION_PACKAGES = ("supervisor", "asyncio_worker", "trio_worker")


def modules_loaded_by(statement: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``statement``."""
    probe = f"{statement}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, cwd=SHARED_DIR.parent
    ).stdout
    return set(json.loads(output))


def test_import_shared_loads_no_event_loop_and_no_worker_machinery() -> None:
    loaded = modules_loaded_by("import shared")
    assert "shared" in loaded
    assert sorted(m for m in loaded if m.split(".")[0] in FORBIDDEN_FOR_TOOLS) == []
    assert sorted(m for m in loaded if m.startswith(FORBIDDEN_SUBPACKAGES)) == []


def test_the_probe_sees_what_the_worker_machinery_loads() -> None:
    """The probe does see the worker machinery once it is imported, so the check above can fail."""
    loaded = modules_loaded_by("import shared.worker")
    assert "shared.worker.core" in loaded


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names (relative ones resolved)."""
    package = ".".join(path.relative_to(SHARED_DIR.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join([*base, *([node.module] if node.module else [])]))
            else:
                names.add(node.module or "")
    return names


@pytest.mark.parametrize(
    "path", sorted(SHARED_DIR.rglob("*.py")), ids=lambda p: str(p.relative_to(SHARED_DIR))
)
def test_shared_imports_nothing_from_the_supervisor_or_a_worker_package(path: Path) -> None:
    offending = sorted(m for m in imported_modules(path) if m.split(".")[0] in APPLICATION_PACKAGES)
    assert offending == []
