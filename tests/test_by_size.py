"""The CP-SAT model over VM sizes: the fewest hosts and moves on a cluster worked out by
hand, VMs that rules name left where the incumbent has them, and on generated clusters a
placement that passes the checker and beats the incumbent, or none."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.model import Goal, active_hosts
from scheduler.placement.evaluate import indicators, score
from scheduler.planning.check import check_placement
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.by_size import improve_by_size
from scheduler.solver.cpsat.solve import SolverSettings
from tests.conftest import cluster_of, hosts, vm
from tests.test_properties import clusters

ONE_WORKER = SolverSettings(workers=1, seed=0)


def three_hosts(rules: list[dict[str, Any]]) -> dict[str, Any]:
    # 128 GiB on three 64 GiB hosts: two are enough. Emptying h3 (16, 16, 8, 8 GiB) takes
    # 4 moves; emptying h2 takes 3: its 32 GiB VM fits on h3 once a 16 GiB VM leaves h3 for
    # h1, with b8. Two moves cannot do: they empty h1 or h2, whose 32 GiB VM then fits
    # nowhere.
    rows = [vm("a32", "32GiB", "h1"), vm("a8", "8GiB", "h1")]
    rows += [vm("b32", "32GiB", "h2"), vm("b8", "8GiB", "h2")]
    rows += [vm(f"c{i}", m, "h3") for i, m in enumerate(["16GiB", "16GiB", "8GiB", "8GiB"])]
    return {"name": "sizes", "hosts": hosts(3), "vms": rows, "rules": rules}


def test_the_model_over_sizes_finds_the_fewest_hosts_and_moves() -> None:
    cluster = cluster_of(three_hosts([]))
    found = improve_by_size(
        cluster, Goal.CONSOLIDATE, cluster.current_placement, ONE_WORKER, Budget(10.0)
    )
    assert found is not None
    assert len(active_hosts(found)) == 2
    assert indicators(cluster, found).moves == 3
    assert check_placement(cluster, found) == []


def test_vms_a_rule_names_stay_where_the_incumbent_has_them() -> None:
    rule = {"type": "anti-affinity", "vms": ["a32", "c0"]}
    cluster = cluster_of(three_hosts([rule]))
    incumbent = cluster.current_placement
    found = improve_by_size(cluster, Goal.CONSOLIDATE, incumbent, ONE_WORKER, Budget(10.0))
    # c0 stays on h3, so h3 stays active: the two others must give way instead.
    assert found is not None
    assert found["a32"] == "h1" and found["c0"] == "h3"
    assert len(active_hosts(found)) == 2
    assert check_placement(cluster, found) == []


def test_other_goals_are_left_to_the_other_stages() -> None:
    cluster = cluster_of(three_hosts([]))
    placement = cluster.current_placement
    for goal in (Goal.PLACE, Goal.BALANCE, Goal.EVACUATE):
        assert improve_by_size(cluster, goal, placement, ONE_WORKER, Budget(10.0)) is None


@st.composite
def tight_clusters(draw: st.DrawFn) -> dict[str, Any]:
    """Hosts of 16 GiB and 16 vCPUs filled to most of their room, without rules: the
    capacity binds, so a model that overfilled a host would be caught."""
    count = draw(st.integers(2, 5))
    free = [16] * count
    rows = []
    for j in range(draw(st.integers(2, 4 * count))):
        memory = draw(st.sampled_from([2, 4, 8]))
        fits = [i for i in range(count) if free[i] >= memory]
        if not fits:
            break
        host = draw(st.sampled_from(fits))
        free[host] -= memory
        rows.append(vm(f"v{j}", f"{memory}GiB", f"h{host + 1}", vcpus=draw(st.integers(1, 4))))
    return {"name": "tight", "hosts": hosts(count, cpus=4, memory="16GiB"), "vms": rows}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(clusters(), tight_clusters()))
def test_an_answer_passes_the_checker_and_beats_the_incumbent(data: dict[str, Any]) -> None:
    cluster = cluster_of(data)
    incumbent = cluster.current_placement  # spread out: room to do better
    found = improve_by_size(cluster, Goal.CONSOLIDATE, incumbent, ONE_WORKER, Budget(2.0))
    if found is None:
        return
    assert check_placement(cluster, found) == []
    assert score(cluster, Goal.CONSOLIDATE, found) < score(cluster, Goal.CONSOLIDATE, incumbent)
    named = {name for rule in cluster.rules for name in rule.vms}
    assert all(found[name] == incumbent[name] for name in named)
    assert all(found[name] is None for name, host in incumbent.items() if host is None)
