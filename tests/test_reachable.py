"""Targets a plan can reach: under a spread rule with every rack full, a target that swaps
replicas between racks has no safe order; the search keeps each replica in its rack and the
plan is complete. With a free rack, replicas may still pass through it."""

from __future__ import annotations

import json
from pathlib import Path

from scheduler.engine import decide_plan
from scheduler.model import VM, Cluster, Goal, Host, Limits
from scheduler.planning.check import check_plan
from scheduler.rules import Affinity, AntiAffinity, Pin, Spread
from scheduler.solver.reachable import StayPut, reachable
from tests.test_cli import ROOT, vmpack

SIZE = {"vcpus": 16, "memory_mib": 65536}


def replicas(racks: int, hosts_per_rack: int) -> Cluster:
    """Three replicas, one per rack, each on a host of its own with a filler VM beside it."""
    hosts = tuple(
        Host(f"h{r}{i}", SIZE, SIZE, {"rack": f"r{r}"})
        for r in range(racks)
        for i in range(hosts_per_rack)
    )
    vms = tuple(
        VM(name, {"vcpus": 2, "memory_mib": 8192}, f"h{r}0", {"app": "db"})
        for r, name in enumerate(("db1", "db2", "db3"))
    ) + tuple(VM(f"fill{r}", {"vcpus": 2, "memory_mib": 8192}, f"h{r}1") for r in range(racks))
    spread = Spread(1, ("db1", "db2", "db3"), label_key="rack", max_per_domain=1)
    return Cluster("replicas", hosts, vms, (spread,), limits=Limits(max_parallel_per_host=1))


def test_a_full_spread_keeps_each_replica_in_its_rack() -> None:
    cluster = reachable(replicas(racks=3, hosts_per_rack=2), Goal.CONSOLIDATE)
    locks = [r for r in cluster.rules if isinstance(r, StayPut)]
    assert {(r.vms, r.hosts) for r in locks} == {
        (("db1",), ("h00", "h01")), (("db2",), ("h10", "h11")), (("db3",), ("h20", "h21")),
    }  # fmt: skip
    assert (
        locks[0].label
        == "db1 stays: spread #1 (listed VMs over rack) has no free rack to pass through"
    )
    assert reachable(replicas(racks=3, hosts_per_rack=2), Goal.PLACE).rules == cluster.rules[:1]


def test_a_free_rack_locks_nobody() -> None:
    cluster = reachable(replicas(racks=4, hosts_per_rack=2), Goal.CONSOLIDATE)
    assert not any(isinstance(r, StayPut) for r in cluster.rules)


def test_consolidation_under_full_spreads_is_complete_and_checked() -> None:
    for racks in (3, 4):
        cluster = replicas(racks=racks, hosts_per_rack=2)
        outcome = decide_plan(cluster, Goal.CONSOLIDATE)
        assert outcome.plan.unresolved == ()
        assert check_plan(cluster, outcome.plan) == []  # the user's rules, without the locks
        assert len({h for h in outcome.decision.placement.values()}) == 3


def test_the_bundled_rack_scenario_consolidates_completely(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    scenario = str(ROOT / "scenarios" / "rack-anti-affinity.yaml")
    run = vmpack("plan", scenario, "--time-limit", "10", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    plan = json.loads(out.read_text())
    assert plan["summary"]["unresolved_moves"] == []
    assert plan["summary"]["active_hosts_after"] == plan["summary"]["lower_bound"] == 6
    check = vmpack("check", scenario, str(out))
    assert check.returncode == 0 and check.stdout.startswith("OK")


def pair_cluster(together: bool) -> Cluster:
    """Four hosts, one move at a time per host; an affinity pair a, b (together on h1, or
    apart on h1 and h2) and one filler VM on each other host."""
    hosts = tuple(Host(f"h{i}", SIZE, SIZE) for i in range(1, 5))
    spec = {"vcpus": 2, "memory_mib": 8192}
    vms = (VM("a", spec, "h1"), VM("b", spec, "h1" if together else "h2"),
           VM("c", spec, "h3"), VM("d", spec, "h4"))  # fmt: skip
    rules = (Affinity(1, ("a", "b")),)
    return Cluster("pair", hosts, vms, rules, limits=Limits(max_parallel_per_host=1))


def test_a_pair_apart_is_joined_one_move_at_a_time() -> None:
    cluster = pair_cluster(together=False)
    outcome = decide_plan(cluster, Goal.CONSOLIDATE)
    assert outcome.plan.unresolved == () and check_plan(cluster, outcome.plan) == []
    placement = outcome.decision.placement
    assert placement["a"] == placement["b"]


def test_a_pair_that_cannot_move_in_one_wave_stays_and_says_why() -> None:
    cluster = pair_cluster(together=True)
    outcome = decide_plan(cluster, Goal.EVACUATE, ("h1",))
    assert outcome.plan.unresolved == () and check_plan(cluster, outcome.plan) == []
    assert outcome.left_behind == ["a", "b"]
    (why,) = {r.label for r in outcome.cluster.rules if isinstance(r, StayPut) and r.vms == ("a",)}
    assert why == "a stays: affinity #1 (a, b) moves in one wave, more than may migrate at once"


def test_a_swap_with_no_room_to_park_is_decided_again_without_it() -> None:
    """v6 breaks its pin and only v4's host would do; v4 and v6 may not meet, every other
    host is taken or drained: the swap has no safe order, so v6 stays and the rest moves."""
    hosts = tuple(Host(f"h{i}", SIZE, SIZE) for i in range(4))
    spec = {"vcpus": 2, "memory_mib": 2048}
    where = {"v1": "h0", "v2": "h0", "v3": "h1", "v4": "h2", "v5": "h2", "v6": "h3"}
    vms = tuple(VM(name, spec, host) for name, host in where.items())
    rules = (AntiAffinity(1, ("v2", "v4", "v6")), Pin(2, ("v6",), hosts=("h2", "h1")))
    cluster = Cluster("swap", hosts, vms, rules, limits=Limits(max_parallel_per_host=1))
    outcome = decide_plan(cluster, Goal.EVACUATE, ("h1",))
    assert outcome.plan.unresolved == ()
    assert check_plan(outcome.cluster, outcome.plan) == []
    assert outcome.decision.placement["v6"] == "h3" and outcome.decision.placement["v3"] != "h1"
