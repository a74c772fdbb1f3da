"""The alerting rules and the Grafana dashboard under deploy/monitoring.

The rules are parsed and unit-tested by Prometheus's own ``promtool`` (each alert is made to fire
from synthetic series); every metric name the rules and the dashboard query is checked against
the names a real modelhost exports, read from the registry that ``build_services`` wires.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelhost.services import build_services
from modelhost.settings import Settings
from tests.support.databases import sqlite_url

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
RULES = MONITORING / "prometheus-rules.yaml"
RULE_TESTS = MONITORING / "prometheus-rules.test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
README = MONITORING / "README.md"

SEVERITIES = {"critical", "warning", "info"}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's own variables; the dashboard's are read from its templating list.
GRAFANA_VARIABLES = {"__rate_interval", "__interval", "__range", "__interval_ms", "__range_s"}
# The series an exposition of each metric type holds (prometheus_client names families without
# the _total suffix of counters).
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
PROMQL_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan",
}  # fmt: skip


# -- what modelhost exports ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Each metric family modelhost exports, with the series names it appears under in /metrics.

    Built from the registry of real services (not started: nothing loads, nothing listens), so
    the scrape-time collector's families (cache counters, memory, queues) are there too.
    """
    root = tmp_path_factory.mktemp("monitoring")
    (root / "models").mkdir()
    services = build_services(
        Settings(
            # An S3 repository, so the artifact cache's families are there too; building the
            # store connects to nothing.
            model_repository="s3://bucket/models",
            s3_endpoint="http://127.0.0.1:9",
            database_url=sqlite_url(root),
            cache_dir=root / "cache",
            usage_journal=root / "usage.journal",
        )
    )
    try:
        families: dict[str, set[str]] = {}
        for family in services.metrics.registry.collect():
            suffixes = SERIES_SUFFIXES.get(family.type, ("",))
            series = {family.name + suffix for suffix in suffixes}
            series.update(sample.name for sample in family.samples)
            families[family.name] = series
    finally:
        services.predict_executor.shutdown()
        services.load_executor.shutdown()
        asyncio.run(services.engine.dispose())
    # The scrape-time collector is registered (metrics.watch) and the process collector runs.
    assert "modelhost_cache_hits_total" in families["modelhost_cache_hits"]
    assert "process_resident_memory_bytes" in families
    return families


def series_names(exported: dict[str, set[str]]) -> set[str]:
    # `up` is written by Prometheus itself for every scrape target.
    return {"up"}.union(*exported.values())


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small lexer, enough for these files)."""
    text = re.sub(r"#[^\n]*", "", expr)  # comments
    text = re.sub(r'"(?:[^"\\]|\\.)*"' r"|'(?:[^'\\]|\\.)*'|`[^`]*`", '""', text)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue  # a function, an aggregation or a keyword
        names.add(word)
    return names


def test_the_metric_name_lexer() -> None:
    expr = """
        histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{status=~"5..", x="y z"}[5m])))
          > 2  # THRESHOLD: b_total
        and on (instance) c offset 5m
        unless absent(d{job=~".*"} == 1) or 1.2 * e + 5e8 > bool sum(f) without (le)
    """
    assert metric_names(expr) == {"a_bucket", "c", "d", "e", "f"}


# -- promtool ------------------------------------------------------------------------------------


def promtool(*args: str | Path) -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed; it comes with Prometheus: apt-get install prometheus "
            "(scripts/test installs it)"
        )
    result = subprocess.run(
        [path, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{output}"
    return output


def load_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    assert [group["name"] for group in groups] == ["modelhost"]
    rules: list[dict[str, Any]] = groups[0]["rules"]
    return rules


def test_the_rules_pass_promtool_check() -> None:
    assert "SUCCESS" in promtool("check", "rules", RULES)


def test_every_alert_fires_and_holds_back_in_promtool_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", RULE_TESTS)
    # ...and those tests cover every alert both ways: at least one evaluation where it fires
    # and one where it must not.
    suite = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    holds: set[str] = set()
    for case in suite["tests"]:
        for check in case.get("alert_rule_test", []):
            (fires if check.get("exp_alerts") else holds).add(check["alertname"])
    alerts = {rule["alert"] for rule in load_rules() if "alert" in rule}
    assert alerts - fires == set(), "alerts no unit test makes fire"
    assert alerts - holds == set(), "alerts no unit test expects to stay quiet"
    assert {
        "ModelhostInstanceDown",
        "ModelhostMemoryNearBudget",
        "ModelhostProcessMemoryOverBudget",
        "ModelhostHighP99Latency",
        "ModelhostHigh5xxRate",
        "ModelhostModelLoadFailures",
        "ModelhostQueueSaturated",
    } <= alerts


def test_every_alert_says_how_bad_and_what_to_check() -> None:
    for rule in load_rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert len(rule["annotations"]["description"]) > 80, name


def test_the_rules_query_only_metrics_modelhost_exports(exported: dict[str, set[str]]) -> None:
    known = series_names(exported)
    for rule in load_rules():
        used = metric_names(rule["expr"])
        assert used, rule
        assert used <= known, f"{rule.get('alert') or rule.get('record')}: {used - known}"


# -- the Grafana dashboard -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels inside a collapsed row


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"{panel['title']} {target['refId']}", target["expr"]


def test_the_dashboard_is_a_grafana_dashboard(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] and dashboard["title"]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    model = variables["model"]
    assert model["type"] == "query"
    assert model["datasource"] == DATASOURCE
    assert model["query"]["query"] == "label_values(modelhost_requests_total, model)"

    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    names = set(variables) | GRAFANA_VARIABLES
    for panel in panels(dashboard):
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            used = set(re.findall(r"\$\{?(\w+)", target["expr"]))
            assert used <= names, f"{panel['title']}: undefined variables {used - names}"


def test_the_dashboard_queries_parse(dashboard: dict[str, Any], tmp_path: Path) -> None:
    # promtool parses PromQL when it checks rules: hand it each query as a recording rule, with
    # Grafana's variables replaced by what Grafana would put there.
    values = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}
    rules = []
    for number, (_, expr) in enumerate(queries(dashboard)):
        for variable, value in values.items():
            expr = expr.replace(variable, value)
        expr = re.sub(r"\$\{?\w+\}?", ".*", expr)  # the dashboard's own variables: All
        rules.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in promtool("check", "rules", path)


def test_the_dashboard_queries_only_metrics_modelhost_exports(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    known = series_names(exported)
    for where, expr in queries(dashboard):
        used = metric_names(expr)
        assert used, where
        assert used <= known, f"{where}: {used - known}"


def test_every_modelhost_metric_is_on_the_dashboard_and_in_the_readme(
    dashboard: dict[str, Any], exported: dict[str, set[str]]
) -> None:
    used = set().union(*(metric_names(expr) for _, expr in queries(dashboard)))
    readme = README.read_text()
    for family, series in exported.items():
        if not family.startswith("modelhost_"):
            continue
        assert series & used, f"no dashboard panel shows {family}"
        listed = any(re.search(rf"\b{name}\b", readme) for name in series | {family})
        assert listed, f"{README.name} does not list {family}"
