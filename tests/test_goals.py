"""The four goals on small clusters whose best answer can be worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from scheduler.engine import decide_plan
from scheduler.model import Goal, active_hosts
from scheduler.placement.explain import why_not_placed
from scheduler.planning.check import check_placement, check_plan
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import greedy_start
from tests.conftest import cluster_of, hosts, vm


def test_consolidate_reaches_the_bound_with_fewest_moves(options: SearchOptions) -> None:
    # 4 hosts of 64 GiB holding 40, 24, 16 and 8 GiB (88 GiB): at least 2 hosts.
    # Emptying the two hosts with the fewest VMs (h3: 2 VMs, h4: 1 VM) moves 3 VMs.
    rows = [vm(f"a{i}", host="h1") for i in range(5)] + [vm(f"b{i}", host="h2") for i in range(3)]
    rows += [vm("c0", host="h3"), vm("c1", host="h3"), vm("d0", host="h4")]
    cluster = cluster_of({"name": "t", "hosts": hosts(4), "vms": rows})
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, options=options)
    summary = outcome.summary()
    assert summary["active_hosts_after"] == summary["lower_bound"] == 2
    assert summary["moves"] == summary["moves_lower_bound"] == 3
    assert summary["memory_moved_mib"] == 3 * 8192
    assert summary["status"] == "optimal"
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_large_neighbourhood_search_reaches_the_same_answer(options: SearchOptions) -> None:
    # Same cluster as above, solved by sub-models only (no model of the whole cluster).
    rows = [vm(f"a{i}", host="h1") for i in range(5)] + [vm(f"b{i}", host="h2") for i in range(3)]
    rows += [vm("c0", host="h3"), vm("c1", host="h3"), vm("d0", host="h4")]
    cluster = cluster_of({"name": "t", "hosts": hosts(4), "vms": rows})
    lns_only = replace(options, full_model_max_pairs=0)
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, options=lns_only)
    summary = outcome.summary()
    assert summary["method"] == "lns"
    assert summary["active_hosts_after"] == summary["lower_bound"] == 2
    assert summary["moves"] == 3 and summary["status"] == "optimal"
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_place_moves_nothing_else(options: SearchOptions) -> None:
    rows = [vm("a", host="h1"), vm("b", host="h2"), vm("new", memory="16GiB")]
    cluster = cluster_of({"name": "t", "hosts": hosts(3), "vms": rows})
    outcome = decide_plan(cluster, Goal.PLACE, options=options)
    assert outcome.summary()["moves"] == 0
    assert outcome.decision.placement["new"] in ("h1", "h2")  # no host switched on for it
    assert [m.kind for m in outcome.plan.moves] == ["place"]


def test_evacuate_empties_hosts_with_least_disruption(options: SearchOptions) -> None:
    rows = [vm("a", host="h1"), vm("b", host="h1"), vm("c", host="h2"), vm("d", host="h3")]
    cluster = cluster_of({"name": "t", "hosts": hosts(3), "vms": rows})
    outcome = decide_plan(cluster, Goal.EVACUATE, ["h1"], options=options)
    placement = outcome.decision.placement
    assert "h1" not in placement.values()
    assert placement["c"] == "h2" and placement["d"] == "h3"  # nothing else moved
    assert outcome.summary()["moves"] == 2
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_balance_evens_out_memory(options: SearchOptions) -> None:
    # 6 VMs of 8 GiB all on h1; balanced over the two active hosts: 24 GiB each.
    rows = [vm(f"v{i}", host="h1") for i in range(6)] + [vm("w", memory="1GiB", host="h2")]
    cluster = cluster_of({"name": "t", "hosts": hosts(2), "vms": rows})
    outcome = decide_plan(cluster, Goal.BALANCE, options=options)
    on_h1 = sum(1 for v in outcome.decision.placement.values() if v == "h1")
    assert on_h1 == 3
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_unplaceable_vm_is_a_result_with_a_diagnosis(options: SearchOptions) -> None:
    # db-3 must avoid db-1 and db-2, which fill both hosts; it cannot be placed.
    rows = [vm("db-1", host="h1"), vm("db-2", host="h2"), vm("db-3")]
    data = {"name": "t", "hosts": hosts(2), "vms": rows,
            "rules": [{"type": "anti-affinity", "vms": ["db-1", "db-2", "db-3"]}]}  # fmt: skip
    cluster = cluster_of(data)
    outcome = decide_plan(cluster, Goal.PLACE, options=options)
    assert outcome.left_behind == ["db-3"]
    text = why_not_placed(outcome.cluster, outcome.decision.placement, "db-3")
    assert text.startswith("db-3 (needs 2 vcpus, 8.0 GiB memory)")
    assert "2 hosts excluded by anti-affinity #1 (db-1, db-2, db-3) (h1, h2)" in text


def test_max_moves_is_a_hard_budget(options: SearchOptions) -> None:
    # Four hosts with one VM each: consolidating to one host takes 3 moves; allow only 1.
    rows = [vm(f"v{i}", host=f"h{i}") for i in range(1, 5)]
    cluster = cluster_of({"name": "t", "hosts": hosts(4), "vms": rows, "limits": {"max_moves": 1}})
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, options=options)
    assert outcome.summary()["moves"] == 1
    assert len(active_hosts(outcome.decision.placement)) == 3


def test_maintenance_host_is_drained_by_consolidation(options: SearchOptions) -> None:
    rows = [vm("a", host="h1"), vm("b", host="h2")]
    data = {"name": "t", "hosts": [*hosts(1), {"name": "h2", "cpus": 16, "memory": "64GiB", "state": "maintenance"}],
            "vms": rows}  # fmt: skip
    outcome = decide_plan(cluster_of(data), Goal.CONSOLIDATE, options=options)
    assert outcome.decision.placement == {"a": "h1", "b": "h1"}


def test_infeasible_rules_are_named(options: SearchOptions) -> None:
    # Three anti-affine VMs, two usable hosts: no placement exists; the pin is innocent.
    rows = [vm("a", host="h1"), vm("b", host="h2"), vm("c", host="h1"), vm("d", host="h2")]
    data = {"name": "t", "hosts": hosts(2), "vms": rows,
            "rules": [{"type": "pin", "vms": ["d"], "hosts": ["h2"]},
                      {"type": "anti-affinity", "vms": ["a", "b", "c"]}]}  # fmt: skip
    outcome = decide_plan(cluster_of(data), Goal.CONSOLIDATE, options=options)
    assert outcome.decision.status.value == "infeasible"
    assert outcome.conflicting_rules == ["anti-affinity #2 (a, b, c)"]


def test_consolidation_relieves_a_host_whose_vms_outgrew_it() -> None:
    """Demand grew under h1 (80 GiB of VMs on 64 GiB): both the one-model search and the
    neighbourhood search move VMs off it, and the checker accepts the plan."""
    data = {"name": "grown", "hosts": hosts(4),
            "vms": [vm(f"v{i}", "16GiB", "h1") for i in range(5)] + [vm("w", "8GiB", "h2")]}  # fmt: skip
    cluster = cluster_of(data)
    start = greedy_start(cluster, Goal.BALANCE)  # no repacking: only the relief moves VMs
    assert check_placement(cluster, start) == []
    for pairs in (30_000, 0):
        options = SearchOptions(SolverSettings(2.0, 1, 0), full_model_max_pairs=pairs)
        outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), options)
        assert check_plan(outcome.cluster, outcome.plan) == [], pairs
        assert not outcome.left_behind
        assert outcome.after.active_hosts == 2


def test_deterministic_settings_give_the_same_answer_twice() -> None:
    data = {"name": "d", "hosts": hosts(6),
            "vms": [vm(f"v{i}", f"{4 + i % 5 * 4}GiB", f"h{1 + i % 6}") for i in range(20)]}  # fmt: skip
    cluster = cluster_of(data)
    options = SearchOptions(SolverSettings(1.0, 1, 0, deterministic=True), full_model_max_pairs=0)
    first = decide_plan(cluster, Goal.CONSOLIDATE, (), options).decision
    second = decide_plan(cluster, Goal.CONSOLIDATE, (), options).decision
    assert first.placement == second.placement and first.iterations == second.iterations


@pytest.mark.parametrize("goal", list(Goal))
def test_every_goal_on_an_empty_cluster_is_an_empty_plan(goal: Goal) -> None:
    """A service that has heard from no host yet, or whose hosts run nothing, decides too."""
    for cluster in (
        cluster_of({"name": "none", "hosts": [], "vms": []}),
        cluster_of({"name": "idle", "hosts": hosts(2), "vms": []}),
    ):
        outcome = decide_plan(cluster, goal)
        assert not outcome.plan.moves and outcome.after.active_hosts == 0
