"""The ``/ui`` page in a real browser (Debian's ``chromium`` driven through ``chromedriver`` by selenium)
against real supervisors (issue 17, section 1).

The page lists the live workers with their pids (as ``/status`` has them); after kill -9 of a worker it
shows the new pid and marks the restart without being reloaded; a pool that keeps failing and a pool
scaled to 0 are marked; calls, errors and a workflow's graph are drawn; with authorization on, ``/ui`` is
refused without a token exactly as ``/status`` is. Every wait polls the page's DOM with a deadline
(``WebDriverWait``); nothing sleeps. The browser console must stay free of errors (a violation of the
page's Content-Security-Policy would show there).

``MCP_UI_SCREENSHOT=PATH`` saves the drawing test's full-page screenshot there too (how
docs/img/dashboard.png is made: that run keeps the page open until its histories are half full, ~40 s,
with a longer running step); every run keeps one in the test's temporary directory.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import psutil
import pytest
from mcp import Client
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import REPO, assert_gone, text
from tests.integration.test_auth import Issuer
from tests.integration.test_quarantine import crash

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1200",
)
DEADLINE = 30.0
"""Seconds a wait on the page may take (a restart shows within two polls, 3 s, on a quiet machine)."""
T = TypeVar("T")

WORKERS_JS = """return [...document.querySelectorAll('#workers tr[data-worker]')].map(row => ({
    id: row.dataset.worker, pid: row.dataset.pid, state: row.dataset.state, pool: row.children[1].innerText,
    restarted: row.dataset.restarted === '1', old: (row.querySelector('.pid-old') || {}).textContent || '',
    text: row.innerText}))"""
RUNTIMES_JS = """return Object.fromEntries([...document.querySelectorAll('#runtimes [data-runtime]')]
    .map(pill => [pill.dataset.runtime, [pill.dataset.state, pill.innerText]]))"""
ERRORS_JS = """return [...document.querySelectorAll('#errors tr[data-seq]')].map(row => ({
    kind: row.dataset.kind, text: row.innerText}))"""
TOOLS_JS = """return Object.fromEntries([...document.querySelectorAll('#tools tr[data-tool]')]
    .map(row => [row.dataset.tool, row.innerText]))"""
QUARANTINED_JS = """return [...document.querySelectorAll('#tools tr[data-quarantined="1"]')]
    .map(row => row.dataset.tool)"""
WORKFLOWS_JS = """return [...document.querySelectorAll('#workflows article[data-workflow]')].map(card => ({
    id: card.dataset.workflow, status: card.dataset.status,
    steps: Object.fromEntries([...card.querySelectorAll('g[data-step]')].map(g => [g.dataset.step, g.dataset.status])),
    edges: card.querySelectorAll('path.dag-edge').length,
    critical: card.querySelectorAll('path.dag-critical').length}))"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium from Debian's packages, through its chromedriver; quit (and checked gone, by
    pid) after the module."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            pytest.fail(f"{binary} is missing: apt-get install chromium chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(str(CHROMEDRIVER))
    driver = webdriver.Chrome(service=service, options=options)
    assert service.process is not None
    pids = [
        service.process.pid,
        *(p.pid for p in psutil.Process(service.process.pid).children(recursive=True)),
    ]
    try:
        yield driver
    finally:
        driver.quit()
        assert_gone(pids, deadline=10.0)


def wait(driver: WebDriver, condition: Callable[[], T | None], what: str, deadline: float = DEADLINE) -> T:
    """Poll ``condition()`` against the page until it returns something truthy; fail naming ``what``."""
    found: list[T] = []

    def check(_: WebDriver) -> bool:
        value = condition()
        if value:
            found.append(value)
            return True
        return False

    WebDriverWait(driver, deadline, poll_frequency=0.1).until(check, f"the page never showed {what}")
    return found[0]


def workers(driver: WebDriver) -> list[dict[str, Any]]:
    return driver.execute_script(WORKERS_JS)  # type: ignore[no-any-return]


def console_errors(driver: WebDriver) -> list[str]:
    """What the page logged as errors since the last call (CSP violations, script errors)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(driver: WebDriver, base: str) -> None:
    """Load ``base``/ui, forget what earlier pages logged, and wait for the page's first update."""
    driver.get(base + "/ui")
    driver.get_log("browser")  # the previous test's page, polling a supervisor that stopped, logged errors
    wait(driver, lambda: driver.execute_script("return document.body.dataset.updated"), "a first update")


def ctl(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supervisor", "ctl", "--port", str(port), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_the_page_lists_the_live_workers_and_shows_a_restart_without_a_reload(
    supervisor_factory: Any, browser: WebDriver
) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    open_page(browser, server.base)

    def listed_as_in_status() -> list[dict[str, Any]] | None:
        shown = workers(browser)
        expected = {w["id"]: str(w["pid"]) for w in server.status()["workers"]}
        return shown if {w["id"]: w["pid"] for w in shown} == expected else None

    shown = wait(browser, listed_as_in_status, "every worker with the pid /status gives it")
    assert {w["id"] for w in shown} >= {"asyncio-0", "trio-0", "trio-queue"}
    assert not any(w["restarted"] for w in shown)

    browser.execute_script("window.sameDocument = true")
    victim = server.worker("asyncio-0")["pid"]
    os.kill(victim, signal.SIGKILL)

    def restart_shown() -> dict[str, Any] | None:
        row = next(w for w in workers(browser) if w["id"] == "asyncio-0")
        now = server.worker("asyncio-0")["pid"]
        if row["restarted"] and row["pid"] not in ("", str(victim)) and row["pid"] == str(now):
            return row
        return None

    row = wait(
        browser, restart_shown, f"asyncio-0 with a new pid and marked restarted after kill -9 of {victim}"
    )
    assert row["old"] == str(victim) and "restarted" in row["text"]
    assert browser.execute_script("return window.sameDocument") is True  # not reloaded
    exits = wait(
        browser,
        lambda: [e for e in browser.execute_script(ERRORS_JS) if e["kind"] == "exit"],
        "the worker's exit among the last errors",
    )
    assert "asyncio-0" in exits[0]["text"] and str(victim) in exits[0]["text"]
    assert "killed by SIGKILL" in exits[0]["text"]
    assert console_errors(browser) == []


def test_a_failing_pool_and_a_pool_scaled_to_0_are_marked(
    supervisor_factory: Any, browser: WebDriver
) -> None:
    server = supervisor_factory("--tools", "tests.integration.trio_crash_tools", wait=False)
    server.wait_for(lambda: server.try_get("/status") is not None, "the supervisor to answer")
    open_page(browser, server.base)
    failed = wait(
        browser,
        lambda: (pill := browser.execute_script(RUNTIMES_JS).get("trio")) and pill[0] == "failed" and pill,
        "the trio pool marked failed",
    )
    assert "every trio worker is failing" in failed[1]
    alerts = browser.find_element("id", "alerts").text
    assert "Pool trio is not ready" in alerts and "exit code 70" in alerts
    assert next(w for w in workers(browser) if w["id"] == "trio-0")["state"] == "failed"

    scaled = ctl(server.port, "scale", "trio", "0")  # what an operator may do about it
    assert scaled.returncode == 0, scaled.stderr
    wait(
        browser,
        lambda: (
            browser.execute_script(RUNTIMES_JS)["trio"][0] == "scaled-to-0"
            and not [w for w in workers(browser) if w["pool"] == "trio"]
        ),
        "the trio pool marked scaled to 0, without its workers",
    )
    assert browser.execute_script(RUNTIMES_JS)["trio"][1].endswith("scaled to 0")
    assert "Pool trio is not ready" not in browser.find_element("id", "alerts").text
    assert console_errors(browser) == []


async def test_the_page_draws_calls_errors_and_a_workflow(
    supervisor_factory: Any, browser: WebDriver, tmp_path: Path
) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    open_page(browser, server.base)
    for_docs = bool(os.environ.get("MCP_UI_SCREENSHOT"))
    train = 60 if for_docs else 8
    steps = [
        {"step_id": "fetch", "action": "echo", "inputs": {"message": "rows"}},
        {"step_id": "parse", "action": "sleep", "inputs": {"seconds": 0.2}, "depends_on": ["fetch"]},
        {"step_id": "enrich", "action": "trio_sleep", "inputs": {"seconds": 0.4}, "depends_on": ["fetch"]},
        {"step_id": "validate", "action": "echo", "inputs": {"message": "ok"}, "depends_on": ["fetch"]},
        {"step_id": "merge", "action": "echo", "inputs": {"message": "m"}, "depends_on": ["parse", "enrich"]},
        {
            "step_id": "report",
            "action": "echo",
            "inputs": {"message": "r"},
            "depends_on": ["merge", "validate"],
        },
    ]
    long_steps = [
        {"step_id": "prepare", "action": "echo", "inputs": {"message": "p"}},
        {"step_id": "train", "action": "sleep", "inputs": {"seconds": train}, "depends_on": ["prepare"]},
        {"step_id": "notify", "action": "echo", "inputs": {"message": "n"}, "depends_on": ["prepare"]},
        {"step_id": "publish", "action": "echo", "inputs": {"message": "x"}, "depends_on": ["train"]},
    ]
    done = anyio.Event()
    async with Client(server.url) as client, anyio.create_task_group() as load:
        for n in range(20):
            await client.call_tool("echo", {"message": f"call {n}"})
            await client.call_tool("whoami_trio", {})
        failed = await client.call_tool("it_fail", {"message": "the upstream API answered 503"})
        assert failed.is_error
        ingest = await client.call_tool("workflow_submit", {"name": "nightly ingest", "steps": steps})
        ingest_id = (ingest.structured_content or {}).get("workflow_id")
        assert ingest_id, text(ingest)
        retrain = await client.call_tool("workflow_submit", {"name": "retrain model", "steps": long_steps})
        retrain_id = (retrain.structured_content or {}).get("workflow_id")

        async def keep_calling() -> None:  # calls/s above 0 while the page is looked at, bounded
            for n in range(20_000):
                if done.is_set():
                    return
                await client.call_tool("echo", {"message": f"load {n}"})

        load.start_soon(keep_calling)

        def drawn(workflow_id: str, status: str) -> Callable[[], dict[str, Any] | None]:
            def find() -> dict[str, Any] | None:
                cards = browser.execute_script(WORKFLOWS_JS)
                card = next((c for c in cards if c["id"] == workflow_id), None)
                return card if card is not None and card["status"] == status else None

            return find

        card = await anyio.to_thread.run_sync(
            lambda: wait(browser, drawn(ingest_id, "completed"), "the workflow done")
        )
        assert card["steps"] == {step["step_id"]: "completed" for step in steps}
        assert card["edges"] == 7 and card["critical"] >= 2
        running = await anyio.to_thread.run_sync(
            lambda: wait(
                browser,
                lambda: (c := drawn(retrain_id, "running")()) and c["steps"].get("train") == "running" and c,
                "the long step running",
            )
        )
        assert running["steps"]["prepare"] == "completed" and running["steps"]["publish"] == "pending"

        tools = await anyio.to_thread.run_sync(
            lambda: wait(
                browser,
                lambda: (t := browser.execute_script(TOOLS_JS)).get("it_fail") and "echo" in t and t,
                "the tools called",
            )
        )
        assert "1 (100%)" in tools["it_fail"] and "tool error 1" in tools["it_fail"]
        errors = browser.execute_script(ERRORS_JS)
        assert any("it_fail" in e["text"] and "upstream API answered 503" in e["text"] for e in errors)
        os.kill(server.worker("trio-0")["pid"], signal.SIGKILL)  # a restart mark in the picture
        await anyio.to_thread.run_sync(
            lambda: wait(
                browser,
                lambda: any(w["id"] == "trio-0" and w["restarted"] for w in workers(browser)),
                "trio-0 restarted",
            )
        )
        if for_docs:  # sparklines with some history in the picture
            await anyio.to_thread.run_sync(
                lambda: wait(
                    browser,
                    lambda: int(browser.execute_script("return document.body.dataset.polls")) >= 26,
                    "26 polls",
                    deadline=90,
                )
            )
        screenshot(browser, tmp_path / "dashboard.png")
        done.set()
    assert console_errors(browser) == []


def screenshot(driver: WebDriver, path: Path) -> None:
    """The whole page (beyond the window) as a PNG at ``path``, and at ``$MCP_UI_SCREENSHOT`` when set."""
    size = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    clip = {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})
    image = base64.b64decode(shot["data"])
    assert image.startswith(b"\x89PNG")
    path.write_bytes(image)
    if os.environ.get("MCP_UI_SCREENSHOT"):
        Path(os.environ["MCP_UI_SCREENSHOT"]).write_bytes(image)


async def test_a_quarantined_tool_is_marked_and_the_mark_goes_when_it_is_released(
    supervisor_factory: Any, browser: WebDriver
) -> None:
    """A tool that really segfaults its worker three times is quarantined (``test_quarantine.py``): the
    page marks it without a reload, and `ctl release` takes the mark away."""
    server = supervisor_factory("--tools", "tests.integration.segfault_tools", "--no-task-queue")
    open_page(browser, server.base)
    async with Client(server.url) as client:
        for _ in range(3):
            await crash(client)
    marked = wait(
        browser,
        lambda: (rows := browser.execute_script(QUARANTINED_JS)) and rows,
        "the quarantined tool marked",
    )
    assert marked == ["it_segfault"]
    alerts = browser.find_element("id", "alerts").text
    assert "Tool it_segfault (asyncio) is quarantined after 3 worker deaths" in alerts
    released = ctl(server.port, "release", "it_segfault")
    assert released.returncode == 0, released.stderr
    wait(browser, lambda: browser.execute_script(QUARANTINED_JS) == [], "the mark gone")
    assert "quarantined" not in browser.find_element("id", "alerts").text
    assert console_errors(browser) == []


def test_with_auth_the_page_is_refused_without_a_token_as_status_is(supervisor_factory: Any) -> None:
    issuer = Issuer()
    try:
        server = supervisor_factory(
            "--no-task-queue",
            "--auth",
            "jwt",
            "--auth-issuer",
            issuer.url,
            "--no-auth-loopback-admin",
        )
        user, admin = issuer.token(server.url), issuer.token(server.url, scope="mcp:use mcp:admin")
        status = httpx.get(server.base + "/status")
        assert status.status_code == 401
        for path in ("/ui", "/ui/app.js", "/ui/workflows"):
            refused = httpx.get(server.base + path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == status.headers["www-authenticate"]
            assert refused.json() == status.json()
            assert (
                httpx.get(server.base + path, headers={"authorization": f"Bearer {user}"}).status_code == 403
            )
            allowed = httpx.get(server.base + path, headers={"authorization": f"Bearer {admin}"})
            assert allowed.status_code == 200, path
        data = httpx.get(server.base + "/status", headers={"authorization": f"Bearer {admin}"})
        assert data.status_code == 200 and data.headers["cache-control"] == "no-store"  # the page's data
        page = httpx.get(server.base + "/ui", headers={"authorization": f"Bearer {admin}"})
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-content-type-options"] == "nosniff"
        wrong_host = httpx.get(
            server.base + "/ui", headers={"host": "attacker.example", "authorization": f"Bearer {admin}"}
        )
        assert wrong_host.status_code == 421  # the Host/Origin guard of every path
    finally:
        issuer.close()
