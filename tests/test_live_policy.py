"""The running scheduler enforces a cluster policy: given at start (``--policy``) or replaced
through the API, validated whole first, kept as versions, and honoured by the next plan."""

from __future__ import annotations

import subprocess
from pathlib import Path

from scheduler.engine import plan_from_json
from scheduler.model import Limits
from scheduler.planning.check import check_plan
from scheduler.scenario.policy import parse_policy
from scheduler.service.executor import ExecutionPolicy
from tests.service_harness import OPERATOR_TOKEN, Service, run_vmpack, running_service
from tests.test_service import reported, settle

APART = {"rules": [{"type": "anti-affinity", "vms": ["web1", "web2", "not-yet"]}]}


def consolidated(service: Service) -> dict[str, str | None]:
    ops = service.client(OPERATOR_TOKEN)
    created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5}).json()
    document = ops.get(f"/v1/plans/{created['id']}").json()["plan"]
    plan = plan_from_json(document)
    assert check_plan(service.runtime.cluster(), plan) == []  # the rules as the service has them
    return dict(document["placement"])


def test_a_rule_applied_through_the_api_binds_the_next_plan(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        before = consolidated(service)
        assert before["web1"] == before["web2"]  # nothing keeps them apart yet: one host
        assert ops.get("/v1/policy").json()["version"] == 0
        applied = ops.put("/v1/policy", json=APART)
        assert applied.status_code == 200 and applied.json()["version"] == 1
        after = consolidated(service)
        assert after["web1"] != after["web2"]  # the rule names a VM not there yet: it waits
        shown = ops.get("/v1/policy").json()
        assert (shown["version"], shown["policy"]) == (1, APART)
        assert shown["by"].startswith("sha256:")
        assert "vmpack_policy_version 1.0" in ops.get("/metrics").text


def test_a_bad_policy_is_refused_whole_and_changes_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        ops = service.client(OPERATOR_TOKEN)
        assert ops.put("/v1/policy", json=APART).status_code == 200
        contradictory = {"rules": [
            {"type": "affinity", "vms": ["a", "b"]}, {"type": "anti-affinity", "vms": ["a", "b"]},
        ], "limits": {"max_parallel": 2}}  # fmt: skip
        for body, error in (
            (contradictory, "rules[1]: anti-affinity contradicts affinity rule 1 on a and b"),
            ({"hosts": []}, "hosts: a policy file holds policy, rules and limits"),
            ({"policy": {"overcommit": {"cpu": 1e9}}}, "policy.overcommit.cpu: Input should be"),
            ({"rules": [{"type": "pin", "vms": ["a"]}]}, "rules[0]: pin needs 'hosts'"),
        ):
            refused = ops.put("/v1/policy", json=body)
            assert refused.status_code == 422 and refused.json()["error"].startswith(error)
        shown = ops.get("/v1/policy").json()
        assert (shown["version"], shown["policy"]) == (1, APART)


def test_the_policy_file_at_start_is_kept_and_survives_a_restart(tmp_path: Path) -> None:
    file = parse_policy("rules:\n  - {type: anti-affinity, vms: [web1, web2]}\n", "test.yaml")
    db = tmp_path / "vmpack.db"
    with running_service(db, policy_file=file) as service:
        reported(tmp_path, service)
        assert service.client(OPERATOR_TOKEN).get("/v1/policy").json()["by"] == "--policy test.yaml"
    with running_service(db) as service:  # no file this time: the stored version stands
        reported(tmp_path, service)
        placement = consolidated(service)
        assert placement["web1"] != placement["web2"]
    with running_service(db, policy_file=file) as service:  # the same file: no new version
        assert service.client(OPERATOR_TOKEN).get("/v1/policy").json()["version"] == 1


def test_vmpack_policy_apply_checks_the_file_then_sends_it(tmp_path: Path) -> None:
    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN)
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("name: prod\nrules:\n  - {type: anti-affinity, vms: [db-1, db-2]}\n")
    bad.write_text("name: prod\nrules:\n  - {type: anti-afinity, vms: [db-1, db-2]}\n")
    with running_service(tmp_path / "vmpack.db") as service:

        def vmpack(*args: str) -> subprocess.CompletedProcess[str]:
            return run_vmpack(service.url, token, "policy", *args)

        refused = vmpack("apply", str(bad))
        assert refused.returncode == 2 and f"{bad}:3: rules[0].type:" in refused.stderr
        applied = vmpack("apply", str(good))
        assert applied.returncode == 0 and "policy version 1 in force" in applied.stdout
        shown = vmpack("show")
        assert shown.returncode == 0 and "# version 1" in shown.stdout and "db-1" in shown.stdout


def test_the_executor_refuses_a_move_that_a_rule_added_after_approval_forbids(
    tmp_path: Path,
) -> None:
    # libvirt's test driver cannot migrate: the moves the executor orders fail in libvirt,
    # and the one the new rule forbids is never ordered at all.
    execution = ExecutionPolicy(on_failure="continue", tick_s=0.1)
    one_at_a_time = Limits(max_parallel=1, max_parallel_per_host=1)
    with running_service(
        tmp_path / "vmpack.db", execution=execution, limits=one_at_a_time
    ) as service:
        team = reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3}).json()
        plan_id = created["id"]
        document = ops.get(f"/v1/plans/{plan_id}").json()["plan"]
        before = {v["name"]: v["host"] for v in ops.get("/v1/vms").json()}
        mover, target = next((vm, h) for vm, h in document["placement"].items() if before[vm] != h)
        stayer = next(vm for vm, h in before.items() if h == target)
        assert ops.post(f"/v1/plans/{plan_id}/approve").status_code == 200
        rule = {"type": "anti-affinity", "vms": [mover, stayer]}
        assert ops.post("/v1/rules", json=rule).status_code == 201  # after the approval
        assert ops.post(f"/v1/plans/{plan_id}/apply").status_code == 200
        settle(team, lambda: ops.get(f"/v1/plans/{plan_id}").json()["status"] != "running",
               "the plan")  # fmt: skip
        plan = ops.get(f"/v1/plans/{plan_id}").json()
        assert plan["status"] == "failed"
        assert mover not in {o["vm"] for o in plan["orders"]}  # never ordered
        refusal = f"cannot move {mover} now: a hard rule forbids {mover} on {target}"
        assert refusal in [e["event"] for e in plan["events"]]  # and the plan ended: stuck
        assert {v["name"]: v["host"] for v in ops.get("/v1/vms").json()}[mover] == before[mover]
