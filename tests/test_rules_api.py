"""Rules as objects through the API and ``vmpack rules``: a deployment tool adds "these
replicas apart" without rewriting the policy file; each change is a policy version."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scheduler.scenario.policy import parse_policy
from tests.service_harness import OPERATOR_TOKEN, run_vmpack, running_service
from tests.test_live_policy import consolidated
from tests.test_service import reported

APART = {"type": "anti-affinity", "vms": ["web1", "web2"]}


def test_rules_are_added_listed_with_their_state_and_deleted(tmp_path: Path) -> None:
    file = parse_policy("rules:\n  - {type: pin, vms: [db1], hosts: [kvm-01, kvm-02]}\n", "p.yaml")
    with running_service(tmp_path / "vmpack.db", policy_file=file) as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        added = ops.post("/v1/rules", json=APART)
        assert added.status_code == 201 and added.json()["policy_version"] == 2
        rule_id = added.json()["id"]
        listed = {r["id"]: r for r in ops.get("/v1/rules").json()}
        assert len(listed) == 2  # the policy file's pin, and the new rule
        assert listed[rule_id]["violations"] == [] and listed[rule_id]["missing_vms"] == []
        assert ops.post("/v1/rules", json=APART).status_code == 409  # the same rule again
        placement = consolidated(service)
        assert placement["web1"] != placement["web2"]  # enforced by the next plan
        # Two VMs of kvm-01 must be apart from now on: the placement breaks the new rule.
        together = ops.post("/v1/rules", json={"type": "anti-affinity", "vms": ["web1", "db1"]})
        listed = {r["id"]: r for r in ops.get("/v1/rules").json()}
        assert listed[together.json()["id"]]["violations"] == [
            "anti-affinity #3 (web1, db1): web1 and db1 both on kvm-01"
        ]
        assert 'vmpack_rule_violations{type="anti-affinity"} 1.0' in ops.get("/metrics").text
        assert ops.delete(f"/v1/rules/{rule_id}").status_code == 200
        assert ops.delete(f"/v1/rules/{rule_id}").status_code == 404
        assert rule_id not in {r["id"] for r in ops.get("/v1/rules").json()}


def test_a_contradictory_rule_is_refused_naming_both(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        ops = service.client(OPERATOR_TOKEN)
        first = ops.post("/v1/rules", json={"type": "affinity", "vms": ["a", "b"]}).json()["id"]
        refused = ops.post("/v1/rules", json={"type": "anti-affinity", "vms": ["a", "b"]})
        assert refused.status_code == 409
        error = refused.json()["error"]
        assert error.startswith("rule r-") and f"contradicts affinity rule {first}" in error
        assert ops.post("/v1/rules", json={"type": "pin", "vms": ["a"]}).status_code == 409
        assert ops.post("/v1/rules", json={"type": "pinn"}).status_code == 422
        assert len(ops.get("/v1/rules").json()) == 1  # nothing half-applied


def test_vmpack_rules_list_add_and_delete(tmp_path: Path) -> None:
    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN)
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)

        def vmpack(*args: str) -> subprocess.CompletedProcess[str]:
            return run_vmpack(service.url, token, "rules", *args)

        added = vmpack("add", "{type: anti-affinity, vms: [web1, web2, db9]}")
        assert added.returncode == 0 and "added (policy version 1)" in added.stdout
        rule_id = added.stdout.split()[1]
        listed = vmpack("list")
        assert listed.returncode == 0 and rule_id in listed.stdout and "db9" in listed.stdout
        assert vmpack("add", "{type: [").returncode == 2
        deleted = vmpack("delete", rule_id)
        assert deleted.returncode == 0 and f"rule {rule_id} deleted" in deleted.stdout
