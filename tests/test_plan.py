"""Waves: capacity with movers counted twice, swap cycles, parallel limits, rules in transit;
and the independent checker catching plans that break them."""

from __future__ import annotations

from scheduler.model import Goal
from scheduler.planning.check import check_plan
from scheduler.planning.waves import Move, Plan, build_plan
from tests.conftest import cluster_of, hosts, vm


def test_swap_cycle_is_broken_with_a_parking_move() -> None:
    # h1 holds a (12 GiB), h2 holds b (12 GiB), 16 GiB each: swapping directly would put
    # 24 GiB on a host mid-move. a parks on h3 first.
    rows = [vm("a", memory="12GiB", host="h1"), vm("b", memory="12GiB", host="h2")]
    cluster = cluster_of({"name": "t", "hosts": hosts(3, memory="16GiB"), "vms": rows})
    plan = build_plan(cluster, Goal.BALANCE, {"a": "h2", "b": "h1"})
    assert [[(m.vm, m.source, m.target, m.parking) for m in w] for w in plan.waves] == [
        [("a", "h1", "h3", True)],
        [("b", "h2", "h1", False)],
        [("a", "h3", "h2", False)],
    ]
    assert check_plan(cluster, plan) == []


def test_swap_cycle_without_room_is_reported_unresolved() -> None:
    rows = [vm("a", memory="12GiB", host="h1"), vm("b", memory="12GiB", host="h2")]
    cluster = cluster_of({"name": "t", "hosts": hosts(2, memory="16GiB"), "vms": rows})
    plan = build_plan(cluster, Goal.BALANCE, {"a": "h2", "b": "h1"})
    assert plan.waves == () and {m.vm for m in plan.unresolved} == {"a", "b"}


def test_parallel_limits_shape_the_waves() -> None:
    # Six VMs leave h1 for h2..h4; per-host limit 2 means h1 sends at most 2 per wave.
    rows = [vm(f"v{i}", memory="4GiB", host="h1") for i in range(6)]
    limits = {"max_parallel": 8, "max_parallel_per_host": 2}
    cluster = cluster_of({"name": "t", "hosts": hosts(4), "vms": rows, "limits": limits})
    target = {f"v{i}": f"h{2 + i % 3}" for i in range(6)}
    plan = build_plan(cluster, Goal.EVACUATE, target)
    assert [len(w) for w in plan.waves] == [2, 2, 2]
    assert check_plan(cluster, plan) == []


def test_anti_affine_vms_never_share_a_host_mid_plan() -> None:
    # b must leave h2 before a may arrive there: two waves, not one.
    rows = [vm("a", host="h1"), vm("b", host="h2")]
    data = {"name": "t", "hosts": hosts(3), "vms": rows,
            "rules": [{"type": "anti-affinity", "vms": ["a", "b"]}]}  # fmt: skip
    cluster = cluster_of(data)
    plan = build_plan(cluster, Goal.BALANCE, {"a": "h2", "b": "h3"})
    assert [[m.vm for m in w] for w in plan.waves] == [["b"], ["a"]]
    assert check_plan(cluster, plan) == []


def test_checker_reports_every_kind_of_violation() -> None:
    rows = [
        vm("a", memory="12GiB", host="h1"),
        vm("b", memory="12GiB", host="h2"),
        vm("c", host="h3"),
    ]
    data = {"name": "t", "hosts": [*hosts(2, memory="16GiB"), {"name": "h3", "cpus": 16, "memory": "64GiB"},
                                   {"name": "h4", "cpus": 16, "memory": "64GiB", "state": "maintenance"}],
            "vms": rows, "rules": [{"type": "anti-affinity", "vms": ["b", "c"]}],
            "limits": {"max_parallel": 1}}  # fmt: skip
    cluster = cluster_of(data)
    swap = (Move("a", "h1", "h2", "migrate"), Move("b", "h2", "h1", "migrate"))
    bad = Plan("t", Goal.BALANCE, {"a": "h2", "b": "h1", "c": "h4"},
               (swap, (Move("c", "h1", "h4", "migrate"),)))  # fmt: skip
    problems = check_plan(cluster, bad)
    assert "wave 1: 2 moves at once, max_parallel is 1" in problems
    assert "wave 1: h2 over capacity: memory_mib 24576 > 16384" in problems
    assert "wave 2: c should leave h1 but is on h3" in problems
    assert "wave 2: c goes to h4, which is not up" in problems
    good_but_rule = Plan("t", Goal.BALANCE, {"a": "h1", "b": "h3", "c": "h3"},
                         ((Move("b", "h2", "h3", "migrate"),),))  # fmt: skip
    assert any("b and c both on h3" in p for p in check_plan(cluster, good_but_rule))
