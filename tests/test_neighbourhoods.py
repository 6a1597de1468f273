"""The neighbourhood search's turns for moves: a target that empties a host holding many VMs
while it keeps one where few stay is turned into one that empties the lighter host, and
moved VMs come home where there is room, on as many hosts."""

from __future__ import annotations

import random

from scheduler.model import Goal
from scheduler.placement.evaluate import indicators
from scheduler.planning.check import check_plan
from scheduler.planning.waves import build_plan
from scheduler.solver import lns
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.neighbourhoods import Incumbent, homecoming, reopening
from scheduler.solver.options import SearchOptions
from tests.conftest import cluster_of, hosts, vm

# h1 holds four 2 GiB VMs, h2 one 4 GiB VM, h3 three 4 GiB VMs: two 16 GiB hosts hold them
# all. The target below empties h1 (four moves); emptying h2 instead takes one.
CLUSTER = cluster_of(
    {
        "name": "lighter",
        "hosts": hosts(3, cpus=64, memory="16GiB"),
        "vms": [vm(f"a{i}", "2GiB", "h1") for i in range(4)]
        + [vm("b0", "4GiB", "h2")]
        + [vm(f"c{i}", "4GiB", "h3") for i in range(3)],
    }
)
HEAVY_TARGET: dict[str, str | None] = {
    "a0": "h2", "a1": "h2", "a2": "h3", "a3": "h2", "b0": "h2",
    "c0": "h3", "c1": "h3", "c2": "h3",
}  # fmt: skip


def test_reopening_frees_the_emptied_hosts_vms_and_the_lighter_hosts_residents() -> None:
    incumbent = Incumbent(CLUSTER, HEAVY_TARGET)
    usable = ["h1", "h2", "h3"]
    found = reopening(incumbent, usable, random.Random(0), 160)
    assert found is not None
    assert found.hosts[0] == "h1"  # the emptied host that held the most VMs
    assert set(found.free or ()) >= {"a0", "a1", "a2", "a3"}
    assert homecoming(incumbent, usable, random.Random(0), 160) is None  # no active host lost VMs


def test_the_search_empties_the_lighter_host_on_as_many_hosts() -> None:
    assert indicators(CLUSTER, HEAVY_TARGET).moves == 4
    # Neighbourhoods of two VMs at most: closing hosts alone cannot see the whole cluster.
    options = SearchOptions(SolverSettings(2.0, workers=1, seed=0), neighbourhood_vms=2)
    budget = Budget(2.0, deterministic=True)
    movable = {v.name for v in CLUSTER.vms}
    found, _ = lns.improve(CLUSTER, Goal.CONSOLIDATE, HEAVY_TARGET, movable, budget, options)
    after = indicators(CLUSTER, found)
    assert (after.active_hosts, after.moves) == (2, 1)
    assert check_plan(CLUSTER, build_plan(CLUSTER, Goal.CONSOLIDATE, found)) == []
