"""The policy's rules on a real lab: two guests a policy file wants apart start on one host;
the violation shows and a repair separates them with one live migration. Then labels set
with ``virsh metadata`` drive a spread rule added through the API, repaired the same way,
and a consolidation and a maintenance keep every rule. Every guest runs exactly once
throughout, never rebooted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.scenario.policy import parse_policy
from tests.lab_cluster import Lab, agents, lab, wait_for, wait_for_reports
from tests.service_harness import OPERATOR_TOKEN, Service, WallClock, running_service
from tests.test_lab import finished_plan
from vmpack_lab.guest import boots

pytestmark = pytest.mark.lab

APART = "rules:\n  - {type: anti-affinity, vms: [g1, g2]}\n"


def carried_out(service: Service, goal: str, moves: int | None = None) -> dict[str, str]:
    """Create, approve and apply a plan of ``goal`` (of ``moves`` moves, if given); its
    target placement once done."""
    ops = service.client(OPERATOR_TOKEN)
    created = ops.post("/v1/plans", json={"goal": goal, "time_limit_s": 5})
    assert created.status_code == 201, created.text
    assert moves is None or created.json()["summary"]["moves"] == moves, created.json()
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
    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN + "\n")
    with (
        lab(tmp_path / "lab", [["g1", "g2"], ["g3"], ["g4"]]) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock(), policy_file=policy) as service,
        agents(service.url, cluster.hosts, racks=["r1", "r2", "r3"]),
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for_reports(ops, hosts=3, vms=4)
        (rule,) = ops.get("/v1/rules").json()
        assert rule["violations"] == ["anti-affinity #1 (g1, g2): g1 and g2 both on lab1"]
        target = carried_out(service, "repair", moves=1)
        assert target["g1"] != target["g2"]
        wait_for(lambda: running_once(cluster) == target, 30, "reports after the repair")
        assert ops.get("/v1/rules").json()[0]["violations"] == []

        # Two VMs share a host now. An operator labels them with virsh; a spread rule added
        # through the API selects them by that label, and the next repair parts them.
        pair = sorted(vm for vm, host in target.items() if list(target.values()).count(host) == 2)
        for vm in pair:
            label(cluster, vm, target[vm], '<vmpack><label key="app">web</label></vmpack>')
        wait_for(lambda: all(v["labels"] == {"app": "web"} for v in ops.get("/v1/vms").json()
                             if v["name"] in pair), 30, "the labels to be reported")  # fmt: skip
        spread = {"type": "spread", "selector": {"app": "web"}, "label": "rack"}
        added = ops.post("/v1/rules", json=spread)
        assert added.status_code == 201, added.text
        listed = {r["id"]: r for r in ops.get("/v1/rules").json()}
        assert listed[added.json()["id"]]["violations"] != []
        target = carried_out(service, "repair", moves=1)
        assert target[pair[0]] != target[pair[1]]
        wait_for(lambda: running_once(cluster) == target, 30, "reports after the second repair")

        # Consolidation, then a maintenance, keep every rule.
        target = carried_out(service, "consolidate")
        wait_for(lambda: running_once(cluster) == target, 30, "reports after consolidation")
        assert all(r["violations"] == [] for r in ops.get("/v1/rules").json())
        busiest = max(set(target.values()), key=list(target.values()).count)
        command = [sys.executable, "-m", "scheduler.cli.main", "maintenance", "enter", busiest,
                   "--time-limit", "5", "--scheduler", service.url, "--token-file", str(token)]  # fmt: skip
        entered = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert entered.returncode == 0, entered.stdout + entered.stderr
        where = running_once(cluster)
        assert busiest not in where.values()
        wait_for(lambda: ops.get("/v1/hosts").json() and all(
            h["vms"] == list(where.values()).count(h["name"]) for h in ops.get("/v1/hosts").json()
        ), 30, "reports after the maintenance")  # fmt: skip
        assert all(r["violations"] == [] for r in ops.get("/v1/rules").json())
        for vm, console in cluster.consoles.items():
            assert boots(console) == 1, f"{vm} rebooted"


def label(cluster: Lab, vm: str, host: str, metadata: str) -> None:
    """``virsh metadata`` on the host the VM runs on, live and in its definition."""
    (uri,) = [h.uri for h in cluster.hosts if h.name == host]
    command = ["virsh", "-c", uri, "metadata", vm, "--uri", "https://vmpack.dev/xmlns/1",
               "--key", "vmpack", "--config", "--live", "--set", metadata]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=30)
