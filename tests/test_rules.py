"""Each rule's faces agree: the incremental check (``admits``), the full check
(``violations``) and the CP-SAT encoding (through a solve)."""

from __future__ import annotations

from scheduler.model import Goal
from scheduler.placement.state import PlacementState
from scheduler.rules import Affinity, AntiAffinity, Ban, Pin, Spread
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide
from tests.conftest import cluster_of, hosts, vm

RACKS = [{**h, "labels": {"rack": f"r{(i // 2) + 1}"}} for i, h in enumerate(hosts(4))]


def test_anti_affinity_counts_a_migrating_vm_on_both_hosts() -> None:
    cluster = cluster_of(
        {"name": "t", "hosts": hosts(3), "vms": [vm("a", host="h1"), vm("b", host="h2")]}
    )
    rule = AntiAffinity(1, ("a", "b"))
    view = PlacementState(cluster, cluster.current_placement)
    assert rule.admits(cluster, "a", "h3", view)
    assert not rule.admits(cluster, "a", "h2", view)
    view.add("a", "h2")  # a migrating to h2 while b is there
    assert rule.violations(cluster, view) == ["anti-affinity #1 (a, b): a and b both on h2"]


def test_affinity_holds_while_the_group_moves_together() -> None:
    cluster = cluster_of(
        {"name": "t", "hosts": hosts(2), "vms": [vm("a", host="h1"), vm("b", host="h1")]}
    )
    rule = Affinity(1, ("a", "b"))
    view = PlacementState(cluster, cluster.current_placement)
    view.add("a", "h2")
    view.add("b", "h2")
    assert rule.violations(cluster, view) == []  # both present on h1 and h2
    view.remove("a", "h1")
    assert rule.violations(cluster, view) == []
    view.remove("b", "h2")  # b back on h1 only, a on h2 only
    assert rule.violations(cluster, view)


def test_spread_counts_per_domain_and_in_flight_twice() -> None:
    cluster = cluster_of(
        {"name": "t", "hosts": RACKS, "vms": [vm("a", host="h1"), vm("b", host="h3")]}
    )
    rule = Spread(1, ("a", "b"), label_key="rack", max_per_domain=1)
    view = PlacementState(cluster, cluster.current_placement)
    assert rule.admits(cluster, "a", "h2", view)  # same rack r1: counted once
    assert not rule.admits(cluster, "a", "h4", view)  # r2 already holds b
    view.add("a", "h4")
    assert rule.violations(cluster, view) == [
        "spread #1 (listed VMs over rack): 2 VMs in rack=r2, at most 1"
    ]


def test_pin_and_ban_filter_hosts() -> None:
    cluster = cluster_of({"name": "t", "hosts": hosts(3), "vms": [vm("a", host="h1")]})
    pin, ban = Pin(1, ("a",), hosts=("h1", "h2")), Ban(2, ("a",), hosts=("h2",))
    a, (h1, h2, h3) = cluster.vm_by_name["a"], cluster.hosts
    assert [pin.host_allowed(a, h) for h in (h1, h2, h3)] == [True, True, False]
    assert [ban.host_allowed(a, h) for h in (h1, h2, h3)] == [True, False, True]
    view = PlacementState(cluster, {"a": "h3"})
    assert pin.violations(cluster, view) and not ban.violations(cluster, view)


def test_solver_honours_every_hard_rule(options: SearchOptions) -> None:
    # Six 8 GiB VMs would fit on one 64 GiB host; the rules force them apart:
    # a,b,c anti-affine -> 3 hosts at least; d pinned to h4; e banned from h1; f with a.
    data = {
        "name": "t", "hosts": hosts(4),
        "vms": [vm(n, host=f"h{i % 4 + 1}") for i, n in enumerate("abcdef")],
        "rules": [
            {"type": "anti-affinity", "vms": ["a", "b", "c"]},
            {"type": "pin", "vms": ["d"], "hosts": ["h4"]},
            {"type": "ban", "vms": ["e"], "hosts": ["h1"]},
            {"type": "affinity", "vms": ["a", "f"]},
        ],
    }  # fmt: skip
    cluster = cluster_of(data)
    placement = decide(cluster, Goal.CONSOLIDATE, options=options).placement
    assert len({placement["a"], placement["b"], placement["c"]}) == 3
    assert placement["d"] == "h4" and placement["e"] != "h1" and placement["f"] == placement["a"]
    assert len(set(placement.values())) == 3  # h4 holds d and one of a, b, c


def test_soft_rule_is_broken_only_when_it_saves_a_host(options: SearchOptions) -> None:
    # Two 8 GiB VMs, two hosts: keeping them apart (soft) would cost a host; consolidation wins.
    data = {
        "name": "t", "hosts": hosts(2), "vms": [vm("a", host="h1"), vm("b", host="h2")],
        "rules": [{"type": "anti-affinity", "vms": ["a", "b"], "soft": True}],
    }  # fmt: skip
    placement = decide(cluster_of(data), Goal.CONSOLIDATE, options=options).placement
    assert placement["a"] == placement["b"]
    placement = decide(cluster_of(data), Goal.BALANCE, options=options).placement
    assert placement["a"] != placement["b"]  # balancing has no reason to break it
