"""The PromQL the shipped dashboards and rules run, read from the committed files (what an
operator imports), with dashboard variables replaced by concrete values."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from tests.conftest import ROOT

DASHBOARD_DIR = ROOT / "dashboards" / "grafana"
PROMETHEUS_DIR = ROOT / "dashboards" / "prometheus"
VARIABLES = {"$__rate_interval": "1m", "$host": ".*"}
METRIC = re.compile(r"\bvmpack_[a-z0-9_]+")
RECORDED = re.compile(r"\bvmpack:[a-z0-9_:]+")


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel, concrete expression) for every target of every panel."""
    found = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                found.append((path.stem, panel["title"], concrete(target["expr"])))
    return found


def variable_queries() -> list[str]:
    """The metric each ``label_values(METRIC, LABEL)`` template variable reads."""
    queries = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        for variable in json.loads(path.read_text())["templating"]["list"]:
            if variable["type"] == "query":
                queries.append(variable["query"])
    return queries


def concrete(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def named_metrics(expr: str) -> set[str]:
    return set(METRIC.findall(expr))


def recorded_names(expr: str) -> set[str]:
    return set(RECORDED.findall(expr))
