"""The move bound against the true fewest moves: worked out by hand where host models differ,
and by trying every placement of small generated clusters."""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.engine import decide_plan
from scheduler.model import Cluster, Goal, active_hosts, iter_moves
from scheduler.placement.evaluate import is_migration
from scheduler.solver.bounds import moves_lower_bound
from scheduler.solver.options import SearchOptions
from tests.conftest import cluster_of, vm


def test_the_hosts_kept_must_have_room_for_every_vm(options: SearchOptions) -> None:
    # Two 24 GiB hosts hold three 6 GiB VMs each, a 64 GiB host two of 16 GiB: 68 GiB in all.
    # Two hosts can end it only if one is the large host, so a small one is emptied: 3 moves,
    # although the host with the fewest VMs (the large one) holds two.
    small = [{"name": f"s{i}", "cpus": 16, "memory": "24GiB"} for i in (1, 2)]
    hosts = [*small, {"name": "big", "cpus": 32, "memory": "64GiB"}]
    rows = [vm(f"a{i}", "6GiB", host="s1") for i in range(3)]
    rows += [vm(f"b{i}", "6GiB", host="s2") for i in range(3)]
    rows += [vm(f"c{i}", "16GiB", host="big") for i in range(2)]
    cluster = cluster_of({"name": "models", "hosts": hosts, "vms": rows})
    summary = decide_plan(cluster, Goal.CONSOLIDATE, options=options).summary()
    assert summary["active_hosts_after"] == 2
    assert summary["moves"] == summary["moves_lower_bound"] == 3


@st.composite
def small_clusters(draw: st.DrawFn) -> dict[str, Any]:
    memories = [draw(st.sampled_from([16, 32])) for _ in range(draw(st.integers(2, 4)))]
    states = [draw(st.sampled_from(["up", "up", "up", "maintenance", "down"])) for _ in memories]
    hosts = [
        {"name": f"h{i}", "cpus": 4, "memory": f"{m}GiB", "state": s}
        for i, (m, s) in enumerate(zip(memories, states, strict=True))
    ]
    free = list(memories)
    vms = []
    for j in range(draw(st.integers(1, 6))):
        mem = draw(st.sampled_from([2, 4, 8, 16]))
        fits = [i for i in range(len(hosts)) if free[i] >= mem]
        host = draw(st.sampled_from([*fits, None])) if fits else None
        row = vm(f"v{j}", f"{mem}GiB", vcpus=draw(st.integers(1, 8)))
        if host is not None:
            free[host] -= mem
            row["host"] = f"h{host}"
        vms.append(row)
    return {"name": "small", "hosts": hosts, "vms": vms}


def fewest_moves_by_host_count(cluster: Cluster) -> dict[int, int]:
    """Every placement of every VM on hosts that accept VMs, within their capacities."""
    return {count: moves for count, (moves, _) in best_placements_by_host_count(cluster).items()}


def best_placements_by_host_count(
    cluster: Cluster,
) -> dict[int, tuple[int, dict[str, str | None]]]:
    """Per count of active hosts, the fewest moves and a placement that makes them."""
    up = [h for h in cluster.hosts if h.accepts_vms]
    resources = list(cluster.resources)
    room = {h.name: np.array([h.capacity.get(r, 0) for r in resources]) for h in up}
    demand = {v.name: np.array([v.demand.get(r, 0) for r in resources]) for v in cluster.vms}
    fewest: dict[int, tuple[int, dict[str, str | None]]] = {}
    for hosts in product([h.name for h in up], repeat=len(cluster.vms)):
        placement: dict[str, str | None] = dict(
            zip([v.name for v in cluster.vms], hosts, strict=True)
        )
        loads = {h: sum((demand[v] for v, on in placement.items() if on == h), 0) for h in room}
        if any((loads[h] > room[h]).any() for h in room):
            continue
        moves = sum(
            1
            for _, source, _ in iter_moves(cluster.current_placement, placement)
            if is_migration(cluster, source)
        )
        count = len(active_hosts(placement))
        if count not in fewest or moves < fewest[count][0]:
            fewest[count] = (moves, placement)
    return fewest


@settings(max_examples=150, deadline=None)
@given(small_clusters())
def test_the_move_bound_never_exceeds_the_fewest_moves(data: dict[str, Any]) -> None:
    cluster = cluster_of(data)
    for count, fewest in fewest_moves_by_host_count(cluster).items():
        assert moves_lower_bound(cluster, count) <= fewest, count
