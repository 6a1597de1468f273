"""The dashboards and rules as shipped: generated files up to date, every query valid PromQL
naming only metrics vmpack exports, every alert unit-tested firing and not firing by
``promtool``. The lab test ``test_lab_prometheus`` runs the same queries on a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from agents.agent import Agent, AgentConfig
from agents.metrics import AgentCollector
from dashboards.alert_cases import CASES
from dashboards.catalogue import DASHBOARDS
from scheduler.ha.reserve import check_ha
from scheduler.metrics import ClusterView, SchedulerMetrics
from tests.conftest import ROOT, cluster_of, hosts, vm
from tests.dashboard_queries import (
    PROMETHEUS_DIR,
    named_metrics,
    panel_queries,
    recorded_names,
    rules,
    variable_queries,
)


def promtool(*args: str, cwd: Path = PROMETHEUS_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def exported_samples() -> set[str]:
    """Every sample name the scheduler and an agent expose (with _total, _bucket, ...)."""
    cluster = cluster_of({"name": "c", "hosts": hosts(2), "vms": [vm("a", host="h1")]})
    view = ClusterView(cluster, {"h1": 1.0}, {}, 0, 0.0, check_ha(cluster))
    names = {s.name for m in SchedulerMetrics(lambda: view).registry.collect() for s in m.samples}
    agent_registry = CollectorRegistry()
    agent_registry.register(AgentCollector(Agent(AgentConfig("h1", "test:///default", "", ""))))
    return names | {s.name for m in agent_registry.collect() for s in m.samples}


def test_generated_files_are_up_to_date() -> None:
    run = subprocess.run([sys.executable, "-m", "dashboards.build", "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_dashboard_panel_has_a_query_and_a_question() -> None:
    queries = panel_queries()
    panels = sum(len(row.panels) for board in DASHBOARDS for row in board.rows)
    assert len({(board, title) for board, title, _ in queries}) == panels
    assert all(p.question.endswith("?") or ")" in p.question
               for b in DASHBOARDS for r in b.rows for p in r.panels)  # fmt: skip


def test_every_metric_named_is_exported_and_every_recording_rule_defined() -> None:
    exported = exported_samples()
    recorded = {r["record"] for r in rules() if "record" in r}
    expressions = [e for _, _, e in panel_queries()] + [r["expr"] for r in rules()]
    expressions += variable_queries()
    for expr in expressions:
        assert named_metrics(expr) <= exported, (expr, named_metrics(expr) - exported)
        assert recorded_names(expr) <= recorded, expr


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses each expression as a recording rule.
    as_rules = [{"record": f"panel:check:{i}", "expr": expr}
                for i, (_, _, expr) in enumerate(panel_queries())]  # fmt: skip
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": as_rules}]}))
    run = promtool("check", "rules", str(path))
    assert run.returncode == 0, run.stdout + run.stderr


def test_rules_and_example_config_pass_promtool_checks() -> None:
    for args in (("check", "rules", "rules.yml"), ("check", "config", "prometheus.yml")):
        run = promtool(*args)
        assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_fires_and_stays_quiet_in_promtool_unit_tests() -> None:
    alerts = {r["alert"] for r in rules() if "alert" in r}
    for rule in rules():
        if "alert" in rule:
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
    firing = {c.alert for c in CASES if any(f is not None for _, f in c.expect)}
    quiet = {c.alert for c in CASES if any(f is None for _, f in c.expect)}
    assert firing == alerts and quiet == alerts
    run = promtool("test", "rules", "rules_test.yml")
    assert run.returncode == 0 and "SUCCESS" in run.stdout, run.stdout + run.stderr
