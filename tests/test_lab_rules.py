"""The policy's rules on a real lab: two guests a policy file wants apart start on one host;
the violation shows, a repair separates them with one live migration, and a rule added at
run time through the API is kept by the consolidation that follows. Every guest runs exactly
once throughout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from scheduler.scenario.policy import parse_policy
from tests.lab_cluster import Lab, agents, lab, wait_for, wait_for_reports
from tests.service_harness import OPERATOR_TOKEN, Clock, Service, running_service
from tests.test_lab import finished_plan
from vmpack_lab.guest import boots

pytestmark = pytest.mark.lab

APART = "rules:\n  - {type: anti-affinity, vms: [g1, g2]}\n"


class WallClock(Clock):
    def __call__(self) -> float:
        return time.time()


def carried_out(service: Service, goal: str) -> dict[str, str]:
    """Create, approve and apply a plan of ``goal``; its target placement once done."""
    ops = service.client(OPERATOR_TOKEN)
    created = ops.post("/v1/plans", json={"goal": goal, "time_limit_s": 5})
    assert created.status_code == 201, created.text
    plan_id = created.json()["id"]
    assert ops.post(f"/v1/plans/{plan_id}/approve").status_code == 200
    assert ops.post(f"/v1/plans/{plan_id}/apply").status_code == 200
    plan = finished_plan(service, plan_id)
    assert plan["status"] == "done", plan["events"]
    return dict(plan["plan"]["placement"])


def running_once(cluster: Lab) -> dict[str, str]:
    where = cluster.where()
    assert sorted(where) == ["g1", "g2", "g3", "g4"]
    assert all(len(hosts) == 1 for hosts in where.values()), where  # never twice, never lost
    return {vm: hosts[0] for vm, hosts in where.items()}


def test_a_broken_rule_is_repaired_live_and_kept_with_rules_added_at_run_time(
    tmp_path: Path,
) -> None:
    policy = parse_policy(APART, "policy.yaml")
    with (
        lab(tmp_path / "lab", [["g1", "g2"], ["g3"], ["g4"]]) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock(), policy_file=policy) as service,
        agents(service.url, cluster.hosts),
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for_reports(ops, hosts=3, vms=4)
        (rule,) = ops.get("/v1/rules").json()
        assert rule["violations"] == ["anti-affinity #1 (g1, g2): g1 and g2 both on lab1"]
        created = ops.post("/v1/plans", json={"goal": "repair", "time_limit_s": 5}).json()
        assert created["summary"]["moves"] == 1
        target = carried_out(service, "repair")
        assert target["g1"] != target["g2"]
        wait_for(lambda: ops.get("/v1/rules").json()[0]["violations"] == [], 30, "the repair")
        assert running_once(cluster) == target
        # A deployment tool adds a rule now: g3 apart from g1. The next plan keeps both.
        added = ops.post("/v1/rules", json={"type": "anti-affinity", "vms": ["g1", "g3"]})
        assert added.status_code == 201
        target = carried_out(service, "consolidate")
        assert target["g1"] != target["g2"] and target["g1"] != target["g3"]
        wait_for(lambda: running_once(cluster) == target, 30, "reports after consolidation")
        assert all(r["violations"] == [] for r in ops.get("/v1/rules").json())
        for vm, console in cluster.consoles.items():
            assert boots(console) == 1, f"{vm} rebooted"
