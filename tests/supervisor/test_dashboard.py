"""The ``/ui`` routes (``supervisor/dashboard.py``) on an app of their own, and the page's files: every file
the page loads is served and shipped in the package, none holds what the page's policy refuses (inline
script or style), and ``/ui/workflows`` asks the queue's ``tasks:workflows`` entry. The page itself runs in
a real browser in ``tests/integration/test_dashboard.py``."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from supervisor.dashboard import NO_QUEUE, SECURITY_HEADERS, add_dashboard, ui_files
from supervisor.workflow_graphs import WORKFLOWS_SHOWN, RecentWorkflows
from tests.conftest import REPO
from tests.supervisor.test_queue_status import Clock, FakeRouter

pytestmark = pytest.mark.anyio

ANSWER = {
    "workflows": [{"workflow_id": "wf-1", "name": "n", "status": "running", "graph": None}],
    "total_count": 3,
}


def client(queue: bool = True, answer: Any = ANSWER) -> tuple[TestClient, FakeRouter]:
    router = FakeRouter(answer)
    router.catalog.pool_of = {"tasks:workflows": "trio-queue"}
    app = FastAPI()
    add_dashboard(app, router, SimpleNamespace(queue_status=object() if queue else None))  # type: ignore[arg-type]
    return TestClient(app), router


def test_the_page_and_its_files_carry_the_policy_and_unknown_names_are_404() -> None:
    http, _ = client()
    page = http.get("/ui")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    assert "script-src" not in SECURITY_HEADERS["content-security-policy"]  # default-src 'self' only
    assert page.headers["cache-control"] == "no-cache"
    script = http.get("/ui/app.js")
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert script.headers["x-content-type-options"] == "nosniff"
    assert http.get("/ui/app.css").headers["content-type"] == "text/css; charset=utf-8"
    for missing in ("/ui/nope.js", "/ui/index.html", "/ui/..%2Fdashboard.py", "/ui/__init__.py"):
        answer = http.get(missing)
        assert answer.status_code == 404, missing
        assert answer.headers["x-content-type-options"] == "nosniff"


def test_ui_workflows_asks_the_queue_for_the_newest_workflows_and_is_never_cached() -> None:
    http, router = client()
    answer = http.get("/ui/workflows")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["workflows"] == ANSWER["workflows"] and body["total_count"] == 3 and body["error"] is None
    assert router.calls == [("tasks", "workflows", 3.0)]


def test_ui_workflows_without_a_task_queue_says_so() -> None:
    http, router = client(queue=False)
    body = http.get("/ui/workflows").json()
    assert body == {"workflows": [], "total_count": 0, "as_of": None, "error": NO_QUEUE}
    assert router.calls == []


async def test_recent_workflows_are_asked_with_their_limit_and_kept_with_their_age() -> None:
    clock, router = Clock(), FakeRouter(ANSWER)
    router.catalog.pool_of = {"tasks:workflows": "trio-queue"}
    seen: list[dict[str, Any] | None] = []
    call = router.call

    async def record(tool: str, arguments: dict[str, Any] | None, **options: Any) -> dict[str, Any]:
        seen.append(arguments)
        return await call(tool, arguments, **options)

    router.call = record  # type: ignore[method-assign]
    workflows = RecentWorkflows(clock)
    assert workflows.document() == {"workflows": [], "total_count": 0, "as_of": None, "error": None}
    await workflows.refresh(router)
    await workflows.refresh(router)  # within MIN_INTERVAL: nothing asked
    assert seen == [{"limit": WORKFLOWS_SHOWN}]
    clock.now += 2.0
    assert workflows.document()["as_of"] == 2.0


def test_every_file_the_page_loads_is_served_and_shipped_and_none_is_inline() -> None:
    files = ui_files()
    assert {"index.html", "app.js", "app.css"} <= set(files)
    page = files["index.html"][0].decode()
    loaded = set(re.findall(r'(?:src|href)="ui/([^"]+)"', page))
    for name, (content, _) in files.items():
        if name.endswith(".js"):
            loaded |= set(re.findall(r'from "\./([^"]+)"', content.decode()))
    assert loaded and loaded <= set(files), loaded - set(files)
    # the policy allows no inline script, handler or style: the page would silently lose them
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert not re.search(r"\s(on\w+|style)=", page)
    for name, (content, _) in files.items():
        if name.endswith(".js"):
            assert not re.search(
                r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", content.decode()
            ), name
    shipped = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "supervisor"
    ]
    for name in files:
        assert any(fnmatch.fnmatch(f"ui/{name}", pattern) for pattern in shipped), name
