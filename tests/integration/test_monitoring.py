"""The monitoring files of ``deploy/`` (issue 17, section 1): the Prometheus alert rules pass ``promtool
check rules`` and fire as their ``promtool test rules`` cases say; every query of the Grafana dashboard
parses as PromQL; a live supervisor's ``/metrics`` passes ``promtool check metrics``; and every metric a
rule or a panel names exists in that live output, so that neither can drift from ``supervisor/metrics.py``.

``promtool`` comes from Debian's ``prometheus`` package (``.ci/run`` installs it when missing).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from tests.conftest import REPO

pytestmark = pytest.mark.anyio

RULES = REPO / "deploy" / "prometheus-rules.yml"
DASHBOARD = REPO / "deploy" / "grafana-dashboard.json"
RULE_CASES = REPO / "tests" / "integration" / "monitoring" / "prometheus-rules.test.yml"
METRIC = re.compile(r"\bmcp_supervisor_[a-z0-9_]+")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$instance": ".*"}


def promtool(*args: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run does)")
    return subprocess.run(
        [found, *args], input=stdin, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[str]:
    queries = [target["expr"] for panel in panels() for target in panel["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"])
    return queries


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_rules_pass_promtool_and_fire_as_their_cases_say() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert f"SUCCESS: {len(rules)} rules found" in checked.stdout
    tested = promtool("test", "rules", RULE_CASES.name, cwd=RULE_CASES.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    cases = yaml.safe_load(RULE_CASES.read_text())["tests"]
    fired = {
        case["alertname"] for test in cases for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in rules}  # every alert has a case where it fires
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_every_query_of_the_dashboard_is_promql(tmp_path: Path) -> None:
    recorded = []
    for n, query in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            query = query.replace(variable, value)
        if query.startswith("label_values("):  # Grafana's own function: its metric must exist
            query = query.removeprefix("label_values(").split(",")[0]
        recorded.append({"record": f"dashboard:query_{n}", "expr": query})
    as_rules = tmp_path / "dashboard-queries.yml"
    as_rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = promtool("check", "rules", str(as_rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_panels_are_laid_out_on_the_grid_without_overlap() -> None:
    board = dashboard()
    assert board["uid"] == "mcp-supervisor" and board["title"]
    taken: set[tuple[int, int]] = set()
    ids = set()
    for panel in board["panels"]:
        assert panel["id"] not in ids
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"] and all(target["expr"] for target in panel["targets"])
            assert panel.get("description"), panel["title"]


def exposed_names(text: str) -> set[str]:
    """The sample names a ``/metrics`` text can have: each family's, with a histogram's suffixes."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


async def test_live_metrics_pass_promtool_and_hold_every_metric_the_rules_and_panels_name(
    supervisor_factory: Any,
) -> None:
    server = supervisor_factory("--tools", "tests.integration.call_tools")
    async with Client(server.url) as client:
        await client.call_tool("echo", {"message": "counted"})
        await client.call_tool("it_fail", {"message": "counted too"})
    text = server.wait_for(
        lambda: "\nmcp_supervisor_task_queue_paused " in (scraped := server.get("/metrics").text) and scraped,
        "the task queue's figures on /metrics",
    )
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exposed = exposed_names(text)
    used = {name for query in [*rule_expressions(), *dashboard_queries()] for name in METRIC.findall(query)}
    assert len(used) > 15 and "mcp_supervisor_tool_call_duration_seconds_bucket" in used
    missing = used - exposed
    assert not missing, f"named by deploy/ but not on /metrics: {sorted(missing)}"
