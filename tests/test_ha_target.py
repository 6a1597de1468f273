"""The HA reserve inside a consolidation target: the hosts kept cover every VM after any
failure the policy names, the chosen target never keeps more hosts on than the reserve-free
one with its reserve added, its plan passes the checker, and the service reports the cost."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agents.agent import Agent, AgentConfig
from bench.families import cloud_mixed
from scheduler.engine import decide_plan
from scheduler.ha.target import powered_hosts, with_reserve
from scheduler.model import Cluster, Goal, HaPolicy, Policy
from scheduler.planning.check import check_plan
from scheduler.scenario.load import scenario_from_data
from scheduler.solver.budget import Budget
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide
from scheduler.solver.starts.keep_set import select_hosts
from tests.libvirt_hosts import Guest, connect, write_host
from tests.service_harness import AGENT_TOKEN, OPERATOR_TOKEN, running_service

ROOT = Path(__file__).resolve().parent.parent


def racked(policy: HaPolicy) -> Cluster:
    """60 hosts of three models in three racks, 500 VMs spread over them."""
    cluster = scenario_from_data(cloud_mixed(60, 500, seed=3, shared=ROOT)).cluster
    return replace(cluster, policy=Policy(cluster.policy.overcommit, policy))


def test_the_hosts_kept_cover_every_vm_after_any_rack_or_host_failure() -> None:
    for policy in (HaPolicy(failure_domain="rack"), HaPolicy(host_failures_to_tolerate=2)):
        cluster = racked(policy)
        keep = select_hosts(cluster, cluster.current_placement, 0.0, Budget(5.0), reserve=policy)
        assert keep is not None
        kept = [h for h in cluster.hosts if h.name in keep]
        demand = {r: sum(v.demand.get(r, 0) for v in cluster.vms) for r in cluster.resources}
        failures = [
            [h for h in kept if h.labels["rack"] == rack] for rack in {"r000", "r001", "r002"}
        ]
        if policy.host_failures_to_tolerate:
            failures = [sorted(kept, key=lambda h: -h.capacity["memory_mib"])[:2]]
        for failed in failures:
            for r, amount in demand.items():
                left = sum(h.capacity.get(r, 0) for h in kept if h not in failed)
                assert left >= amount, (policy, r)


def test_the_chosen_target_keeps_no_more_hosts_on_than_the_reserve_free_one() -> None:
    cluster = racked(HaPolicy(failure_domain="rack"))
    free = decide(cluster, Goal.CONSOLIDATE, (), SearchOptions(), Budget(2.0, deterministic=True))
    chosen, cost = with_reserve(free.cluster, Goal.CONSOLIDATE, free.placement, Budget(5.0))
    assert cost.powered_hosts == powered_hosts(free.cluster, chosen)
    assert cost.powered_hosts <= powered_hosts(free.cluster, free.placement)
    assert cost.reserve_free_hosts <= cost.powered_hosts


def test_a_consolidation_under_a_rack_policy_reports_the_reserve_and_passes_the_checker() -> None:
    cluster = racked(HaPolicy(failure_domain="rack"))
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), SearchOptions(), Budget(20.0))
    cost = outcome.reserve_cost
    assert cost is not None and outcome.power.reserve_holds
    assert cost.powered_hosts == outcome.after.active_hosts + len(outcome.power.kept_for_reserve)
    assert not check_plan(outcome.cluster, outcome.plan)
    summary = outcome.summary()["ha_reserve_cost"]
    assert summary["hosts"] == cost.powered_hosts - cost.reserve_free_hosts


def test_the_service_consolidates_with_the_reserve_inside(tmp_path: Path) -> None:
    """Three real agents (libvirt's test driver) in two zones, the policy keeping a zone's
    failure covered: the plan the service makes says what the reserve costs."""
    policy = Policy(ha=HaPolicy(failure_domain="zone"))
    with running_service(tmp_path / "vmpack.db", policy=policy) as service:
        zones = ("a", "a", "b", "b")
        for i in range(1, 5):
            guests = [Guest(f"vm{i}{k}", 2048, 1) for k in range(2)]
            conn = connect(write_host(tmp_path, i, 16, 32, guests))
            labels = {"zone": zones[i - 1]}
            config = AgentConfig(f"kvm-0{i}", "test:///", service.url, AGENT_TOKEN, labels=labels)
            assert Agent(config, connect=lambda _uri, c=conn: c).beat()
        ops = service.client(OPERATOR_TOKEN)
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3})
        assert created.status_code == 201, created.text
        summary = created.json()["summary"]
        cost = summary["ha_reserve_cost"]
        assert cost is not None and summary["ha_reserve_holds"]
        assert cost["hosts_powered_on"] >= 2  # one host in each zone at least
        assert cost["hosts"] == cost["hosts_powered_on"] - cost["reserve_free_active_hosts"]
