"""``GET /ui``: a live page of the supervisor, served by the supervisor itself from files in the package.

The page (``supervisor/ui/``: ``index.html``, ES modules and a style sheet; no build step, nothing
fetched from elsewhere, so it works on a host without internet) polls ``/status`` and
``/ui/workflows`` and draws them: workers with CPU and memory histories, tools with calls/s, latency
percentiles and errors, the task queue, the newest workflows as graphs, the last errors.

Access is that of ``/status``: the Host/Origin guard (``host_guard.py``) and, with authorization on, the
admin scope (``auth/middleware.py`` treats ``/ui`` and every path under ``/ui/`` as admin paths, with
the same loopback exception). Every answer carries ``SECURITY_HEADERS``: a Content-Security-Policy that
allows only this origin's files (no inline script, no other host), ``nosniff``, no framing, no referrer.
The data (``/ui/workflows``, and ``/status``, see ``front.py``) is never cached (``NO_STORE``).

Routes: ``/ui`` (the page), ``/ui/<file>`` (one of the files of ``supervisor/ui/``, known at start;
anything else is 404), ``/ui/workflows`` (``workflow_graphs.RecentWorkflows``: JSON).
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.requests import Request
from fastapi.responses import JSONResponse, Response

from .router import Router
from .types import SupervisorView
from .workflow_graphs import RecentWorkflows

UI_PATH = "/ui"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""The files of ``supervisor/ui/`` that are served, by suffix, with their content type."""
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
NO_STORE = {"cache-control": "no-store"}
"""For data: a browser or a proxy keeps no copy."""
REVALIDATE = {"cache-control": "no-cache"}
"""For the page's files: kept, but checked at each load (an upgrade of the supervisor shows at once)."""
NO_QUEUE = "this supervisor runs no task queue (task_queue = false)"


def ui_files() -> dict[str, tuple[bytes, str]]:
    """The files the page is made of: name → (content, content type), read once from the package."""
    folder = resources.files("supervisor") / "ui"
    files = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            files[entry.name] = (entry.read_bytes(), CONTENT_TYPES[suffix])
    return files


def add_dashboard(app: FastAPI, router: Router, supervisor: SupervisorView) -> None:
    """Add the ``/ui`` routes to ``app`` (see the module docstring)."""
    files = ui_files()
    workflows = RecentWorkflows() if supervisor.queue_status is not None else None

    def file_response(name: str) -> Response:
        content, media_type = files[name]
        return Response(content, media_type=media_type, headers={**SECURITY_HEADERS, **REVALIDATE})

    @app.get(UI_PATH, include_in_schema=False)
    async def page() -> Response:
        """The page."""
        return file_response("index.html")

    @app.get(UI_PATH + "/workflows", include_in_schema=False)
    async def recent_workflows() -> JSONResponse:
        """The newest workflows with their graphs (``workflow_graphs.py``)."""
        if workflows is None:
            body = {"workflows": [], "total_count": 0, "as_of": None, "error": NO_QUEUE}
        else:
            await workflows.refresh(router)
            body = workflows.document()
        return JSONResponse(body, headers={**SECURITY_HEADERS, **NO_STORE})

    @app.get(UI_PATH + "/{name:path}", include_in_schema=False)
    async def ui_file(request: Request) -> Response:
        """One of the page's files; 404 for any other name."""
        name = request.path_params["name"]
        if name not in files or name == "index.html":
            return Response("not found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)
        return file_response(name)
