"""The HA reserve check: which VMs each host or domain failure strands, and why."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from scheduler.engine import decide_plan, outcome_of
from scheduler.ha.power import power_advice
from scheduler.ha.reserve import check_ha
from scheduler.ha.watch import reserve_by_wave
from scheduler.model import Goal, HaPolicy, HostState
from scheduler.planning.check import check_placement, check_plan
from scheduler.planning.waves import order_moves
from scheduler.rules import held_in_place
from scheduler.scenario.load import ScenarioError, load_scenario
from scheduler.solver.cpsat.solve import SolveStatus
from scheduler.solver.pipeline import Decision
from tests.conftest import ROOT, cluster_of, hosts, vm
from tests.test_properties import FAST, clusters


def racked(n: int, per_rack: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"h{i}",
            "cpus": 16,
            "memory": "64GiB",
            "labels": {"rack": f"r{(i - 1) // per_rack}"},
        }
        for i in range(1, n + 1)
    ]


def test_n_plus_one_holds_when_the_survivors_have_room() -> None:
    # Three 64 GiB hosts, 32 GiB used on each: any one host's VMs fit on the other two.
    cluster = cluster_of({"name": "n1", "hosts": hosts(3), "vms": [
        vm(f"v{h}{k}", "16GiB", f"h{h}") for h in range(1, 4) for k in range(2)]})  # fmt: skip
    report = check_ha(cluster, HaPolicy(1))
    assert report.satisfied and report.exhaustive
    assert [f.name for f in report.failures] == ["h1", "h2", "h3"]
    assert all(len(f.restarts) == 2 for f in report.failures)


def test_n_plus_one_fails_when_hosts_are_full_and_says_how_many_hosts_cover_it() -> None:
    # 48 GiB used on each of three 64 GiB hosts: 48 to restart, 2 x 16 free elsewhere.
    cluster = cluster_of({"name": "full", "hosts": hosts(3), "vms": [
        vm(f"v{h}{k}", "16GiB", f"h{h}") for h in range(1, 4) for k in range(3)]})  # fmt: skip
    report = check_ha(cluster, HaPolicy(1))
    assert not report.satisfied
    worst = report.worst
    assert worst is not None and len(worst.stranded) == 1 and worst.extra_hosts == 1
    assert all(len(f.restarts) == 2 for f in report.failures)


def test_n_plus_two_needs_more_room_than_n_plus_one() -> None:
    cluster = cluster_of({"name": "n2", "hosts": hosts(4), "vms": [
        vm(f"v{h}{k}", "16GiB", f"h{h}") for h in range(1, 5) for k in range(3)]})  # fmt: skip
    assert check_ha(cluster, HaPolicy(1)).satisfied  # 48 GiB to restart, 3 x 16 GiB free
    two = check_ha(cluster, HaPolicy(2))
    assert len(two.failures) == 6 and not two.satisfied  # 96 GiB to restart, 2 x 16 GiB free


def test_anti_affine_vms_cannot_restart_next_to_each_other() -> None:
    cluster = cluster_of({
        "name": "aa", "hosts": hosts(3),
        "vms": [vm("db1", host="h1"), vm("db2", host="h2"), vm("db3", host="h3"),
                vm("web", host="h1")],
        "rules": [{"type": "anti-affinity", "vms": ["db1", "db2", "db3"]}],
    })  # fmt: skip
    report = check_ha(cluster, HaPolicy(1))
    assert {f.name: f.stranded for f in report.failures} == {
        "h1": ("db1",), "h2": ("db2",), "h3": ("db3",)}  # fmt: skip
    assert report.failures[0].restarts == {"web": "h2"} or report.failures[0].restarts == {
        "web": "h3"
    }


def test_a_pinned_vm_is_stranded_with_its_host() -> None:
    cluster = cluster_of({
        "name": "pin", "hosts": hosts(2), "vms": [vm("licensed", host="h1"), vm("free", host="h1")],
        "rules": [{"type": "pin", "vms": ["licensed"], "hosts": ["h1"]}],
    })  # fmt: skip
    first = check_ha(cluster, HaPolicy(1)).failures[0]
    assert first.stranded == ("licensed",) and first.restarts == {"free": "h2"}


def test_a_rack_failure_restarts_on_the_other_racks_within_the_spread_rule() -> None:
    vms = [vm(f"v{i}", "16GiB", f"h{i}") for i in range(1, 7)]
    spread = {"type": "spread", "vms": ["v1", "v3", "v5"], "label": "rack", "max_per_domain": 1}
    loose = cluster_of({"name": "racks", "hosts": racked(6, 2), "vms": vms})
    report = check_ha(loose, HaPolicy(0, "rack"))
    assert [f.name for f in report.failures] == ["rack=r0", "rack=r1", "rack=r2"]
    assert report.satisfied
    spread_out = cluster_of({"name": "r", "hosts": racked(6, 2), "vms": vms, "rules": [spread]})
    strict = check_ha(spread_out, HaPolicy(0, "rack"))
    assert [f.stranded for f in strict.failures] == [("v1",), ("v3",), ("v5",)]


def test_too_many_combinations_fail_the_most_loaded_hosts_together() -> None:
    many = cluster_of({"name": "big", "hosts": hosts(80), "vms": [
        vm(f"v{i}", f"{8 * (1 + i % 4)}GiB", f"h{1 + i % 80}") for i in range(160)]})  # fmt: skip
    report = check_ha(many, HaPolicy(2))
    assert not report.exhaustive and len(report.failures) <= 2000
    full = {f"h{i}" for i in range(4, 81, 4)}  # 2 x 32 GiB: the most loaded
    tried = {h for f in report.failures for h in f.hosts}
    assert len(tried) == 63 and full <= tried  # C(63, 2) = 1953 <= 2000 < C(64, 2)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (
            {"host_failures_to_tolerate": 3},
            "ha.host_failures_to_tolerate: 3 failures would leave none of 3 hosts",
        ),
        ({"failure_domain": "row"}, "ha.failure_domain: no host has the label 'row'"),
    ],
)
def test_impossible_ha_policies_are_rejected(policy: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        cluster_of({"name": "bad", "hosts": hosts(3), "policy": {"ha": policy}})


def test_the_policy_comes_from_the_scenario() -> None:
    cluster = cluster_of({"name": "p", "hosts": racked(4, 2), "vms": [vm("a", host="h1")],
                          "policy": {"ha": {"host_failures_to_tolerate": 1, "failure_domain": "rack"}}})  # fmt: skip
    report = check_ha(cluster)
    assert [f.name for f in report.failures] == ["h1", "h2", "h3", "h4", "rack=r0", "rack=r1"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_every_restart_placement_passes_the_checker(data: dict[str, Any]) -> None:
    cluster = cluster_of(data)
    report = check_ha(cluster, HaPolicy(1, "rack"))
    current = cluster.current_placement
    for failure in report.failures:
        assert set(failure.restarts) | set(failure.stranded) == set(failure.vms)
        after = {v: h for v, h in current.items() if h not in failure.hosts} | dict(
            failure.restarts
        )
        failed = cluster.replace_hosts(
            replace(h, state=HostState.DOWN) if h.name in failure.hosts else h
            for h in cluster.hosts
        )
        assert check_placement(failed, after) == []
        assert (failure.extra_hosts == 0) == (not failure.stranded)
    assert check_ha(cluster, HaPolicy(1, "rack")) == report  # the check leaves nothing behind


def test_power_advice_keeps_the_fewest_empty_hosts_that_hold_the_reserve() -> None:
    # Two hosts run 48 GiB each; four 64 GiB hosts are empty. A failure needs 48 GiB elsewhere.
    data = {"name": "power", "hosts": hosts(6), "vms": [
        vm(f"v{h}{k}", "16GiB", f"h{h}") for h in (1, 2) for k in range(3)]}  # fmt: skip
    free = cluster_of(data)
    assert power_advice(free, free.current_placement).power_off == ("h3", "h4", "h5", "h6")
    reserved = cluster_of(data | {"policy": {"ha": {"host_failures_to_tolerate": 1}}})
    advice = power_advice(reserved, reserved.current_placement)
    assert advice.reserve_holds and len(advice.kept_for_reserve) == 1  # 16 free on the other
    assert len(advice.power_off) == 3
    two = cluster_of(data | {"policy": {"ha": {"host_failures_to_tolerate": 2}}})
    assert len(power_advice(two, two.current_placement).kept_for_reserve) == 2


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_powering_off_the_advised_hosts_keeps_the_reserve(data: dict[str, Any]) -> None:
    cluster = cluster_of(data | {"policy": {"ha": {"host_failures_to_tolerate": 1}}})
    advice = power_advice(cluster, cluster.current_placement)
    off = set(advice.power_off)
    assert not off & set(advice.kept_for_reserve)
    if advice.reserve_holds:
        powered = cluster.replace_hosts(
            replace(h, state=HostState.DOWN) if h.name in off else h for h in cluster.hosts
        )
        assert check_ha(powered).satisfied
    else:
        assert not off and not check_ha(cluster).satisfied


def test_admission_control_refuses_new_vms_that_would_break_the_reserve() -> None:
    # Three 64 GiB hosts with 32 GiB used each: N+1 holds (32 to restart, 2 x 32 free).
    data = {"name": "admit", "hosts": hosts(3), "policy": {"ha": {"host_failures_to_tolerate": 1}},
            "vms": [vm(f"v{h}", "32GiB", f"h{h}") for h in range(1, 4)]
            + [vm("small", "8GiB"), vm("huge", "24GiB"), vm("vip", "16GiB", priority=5)]}  # fmt: skip
    outcome = decide_plan(cluster_of(data), Goal.PLACE, (), FAST)
    placed = {vm: h for vm, h in outcome.decision.placement.items() if h}
    assert "vip" in placed and "huge" not in placed  # lowest priority, largest, gives way first
    assert set(outcome.refused_for_ha) == set(outcome.left_behind)
    assert outcome.refused_for_ha["huge"].startswith("huge: placing it would break the HA reserve")
    assert check_ha(outcome.cluster.moved_to(outcome.decision.placement)).satisfied
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_the_reserve_is_checked_after_every_wave() -> None:
    # p may only run on h1 or h2; filling h2 leaves p nowhere to go if h1 fails.
    cluster = cluster_of({
        "name": "waves", "hosts": hosts(3), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm("p", "8GiB", "h1"), vm("big", "40GiB", "h2"), vm("g", "20GiB", "h3")],
        "rules": [{"type": "pin", "vms": ["p"], "hosts": ["h1", "h2"]}],
    })  # fmt: skip
    assert check_ha(cluster).satisfied
    assert reserve_by_wave(cluster, [[("g", "h1")]]) == []
    assert reserve_by_wave(cluster, [[("g", "h1")], [("g", "h2")]]) == [
        "wave 2: HA reserve broken: losing h1 would strand 1 VMs (p)"
    ]


def test_plans_are_ordered_so_the_reserve_holds_after_every_wave() -> None:
    """The bundled web tier under N+1: the plan passes through no state where a host failure
    strands a VM, by the planner's account and by the checker's."""
    scenario = load_scenario(ROOT / "scenarios" / "web-tier-consolidation.yaml").cluster
    cluster = replace(scenario, policy=replace(scenario.policy, ha=HaPolicy(1)))
    assert check_ha(cluster).satisfied
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), FAST)
    waves = [[(m.vm, m.target) for m in wave] for wave in outcome.plan.waves]
    assert reserve_by_wave(outcome.cluster, waves) == []
    assert check_plan(outcome.cluster, outcome.plan) == []
    assert outcome.reserve_breaks == []


def test_the_order_keeps_the_reserve_where_the_plain_order_loses_it() -> None:
    # p may only run on h1, h2 or h4. The plain order moves g onto h2 first (w waits for it
    # to leave h3), and then losing h1 leaves p nowhere: h2 and h4 are full. Moving w off
    # h4 first keeps h4 for it.
    data = {
        "name": "order", "limits": {"max_parallel": 1},
        "hosts": [*hosts(2), {"name": "h3", "cpus": 16, "memory": "96GiB"},
                  {"name": "h4", "cpus": 16, "memory": "64GiB"}],
        "vms": [vm("p", "8GiB", "h1"), vm("big", "40GiB", "h2"), vm("g", "20GiB", "h3"),
                vm("w", "60GiB", "h4")],
        "rules": [{"type": "pin", "vms": ["p"], "hosts": ["h1", "h2", "h4"]}],
    }  # fmt: skip
    target = {"p": "h1", "big": "h2", "g": "h2", "w": "h3"}
    plain, _, _ = order_moves(cluster_of(data), target)
    guarded = cluster_of(data | {"policy": {"ha": {"host_failures_to_tolerate": 1}}})
    assert check_ha(guarded).satisfied
    plain_waves = [[(m.vm, m.target) for m in wave] for wave in plain]
    assert plain_waves == [[("g", "h2")], [("w", "h3")]]
    assert reserve_by_wave(guarded, plain_waves) == [
        "wave 1: HA reserve broken: losing h1 would strand 1 VMs (p)"
    ]
    waves, unresolved, breaks = order_moves(guarded, target)
    assert [[m.vm for m in wave] for wave in waves] == [["w"], ["g"]]
    assert not unresolved and breaks == []


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_reserve_aware_order_keeps_every_plan_safe(data: dict[str, Any]) -> None:
    cluster = cluster_of(data | {"policy": {"ha": {"host_failures_to_tolerate": 1}}})
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), FAST)
    assert check_plan(outcome.cluster, outcome.plan) == []
    waves = [[(m.vm, m.target) for m in wave] for wave in outcome.plan.waves]
    assert outcome.reserve_breaks == reserve_by_wave(outcome.cluster, waves)
    location = dict(outcome.cluster.current_placement)
    for wave in outcome.plan.waves:
        location.update({m.vm: m.target for m in wave})
    if not outcome.plan.unresolved:  # the reordering loses no move: the waves reach the target
        assert all(location[vm] == host for vm, host in outcome.decision.placement.items() if host)


@pytest.mark.parametrize("hosts_count, shortfall", [
    (2, {"memory_mib": 16 * 1024}),  # the survivor has 24 GiB free for a 40 GiB VM
    (3, {}),  # 48 GiB free on the survivors, in two pieces of 24 GiB
])  # fmt: skip
def test_each_stranding_failure_names_its_shortfall_per_resource(
    hosts_count: int, shortfall: dict[str, int]
) -> None:
    cluster = cluster_of({
        "name": "short", "hosts": hosts(hosts_count), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm(f"v{i}", "40GiB", f"h{i}") for i in range(1, hosts_count + 1)],
    })  # fmt: skip
    report = check_ha(cluster)
    assert not report.satisfied
    assert all(dict(f.shortfall) == shortfall for f in report.failures)


def test_the_plan_summary_names_the_waves_that_break_the_reserve() -> None:
    cluster = cluster_of({
        "name": "waves", "hosts": hosts(3), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm("p", "8GiB", "h1"), vm("big", "40GiB", "h2"), vm("g", "20GiB", "h3")],
        "rules": [{"type": "pin", "vms": ["p"], "hosts": ["h1", "h2"]}],
    })  # fmt: skip
    target = {"p": "h1", "big": "h2", "g": "h2"}  # h2 full: losing h1 strands p
    decision = Decision(Goal.CONSOLIDATE, cluster, target, SolveStatus.FEASIBLE, 2, 0.0, "test")
    summary = outcome_of(decision, "waves").summary()
    assert summary["ha_reserve_breaks"] == [
        "wave 1: HA reserve broken: losing h1 would strand 1 VMs (p)"
    ]


def test_a_held_vm_still_restarts_elsewhere_when_its_host_fails() -> None:
    # A hold keeps a VM in place for plans (placed but not running yet, or just moved); it
    # is no pin for the reserve: losing h1 restarts a on h2.
    cluster = cluster_of({
        "name": "held", "hosts": hosts(2), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm("a", "8GiB", "h1")],
    })  # fmt: skip
    held = held_in_place(cluster, ["a"])
    assert held.rules[-1].kind == "hold"  # type: ignore[attr-defined]
    assert check_ha(held).satisfied
    pinned = cluster_of({
        "name": "pinned", "hosts": hosts(2), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm("a", "8GiB", "h1")], "rules": [{"type": "pin", "vms": ["a"], "hosts": ["h1"]}],
    })  # fmt: skip
    assert not check_ha(pinned).satisfied
