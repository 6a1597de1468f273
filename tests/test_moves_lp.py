"""The LP bound on moves against the true fewest moves: a case worked out by hand where the
VMs of the host to empty fit no gap, and every placement of small generated clusters."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.solver import moves_lp
from scheduler.solver.bounds import moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.moves_lp import classes_of, moves_lp_bound
from tests.conftest import cluster_of, vm
from tests.test_bounds import best_placements_by_host_count, small_clusters


def gaps_too_small() -> dict[str, Any]:
    # Three 10 GiB hosts: a and b hold 5 + 4 GiB, c holds 2 GiB. Two hosts can hold all
    # 20 GiB only as 5 + 5 and 4 + 4 + 2, so whichever two stay, one VM of each moves and
    # the host emptied loses its own: 3 moves. Counting the VMs of the host with the
    # fewest says 1.
    hosts = [{"name": n, "cpus": 8, "memory": "10GiB"} for n in "abc"]
    rows = [vm("a5", "5GiB", host="a"), vm("a4", "4GiB", host="a")]
    rows += [vm("b5", "5GiB", host="b"), vm("b4", "4GiB", host="b"), vm("c2", "2GiB", host="c")]
    return {"name": "gaps", "hosts": hosts, "vms": rows}


def test_the_lp_sees_that_the_gaps_are_too_small() -> None:
    cluster = cluster_of(gaps_too_small())
    best = best_placements_by_host_count(cluster)
    moves, placement = best[2]
    assert moves == 3
    assert moves_lower_bound(cluster, 2) == 1
    assert moves_lp_bound(cluster, placement, Budget(10.0)) == 3


def test_the_classes_are_by_the_resource_the_vms_fill_most() -> None:
    cluster = cluster_of(gaps_too_small())
    classes = classes_of(cluster, cluster.current_placement)
    assert classes is not None
    assert classes.resource == "memory_mib" and classes.unit == 1024 and classes.exact
    assert classes.counts.tolist() == [1, 2, 2]  # 2, 4 and 5 GiB


@settings(max_examples=150, deadline=None)
@given(small_clusters(), st.booleans())
def test_the_lp_bound_never_exceeds_the_fewest_moves(data: dict[str, Any], coarse: bool) -> None:
    # Coarse units (a 32 GiB host is 3 units) round demands down: still a bound.
    cluster = cluster_of(data)
    best = best_placements_by_host_count(cluster)
    with patch.object(moves_lp, "MAX_UNITS", 3 if coarse else moves_lp.MAX_UNITS):
        for count, (_, placement) in best.items():
            fewest = min(moves for c, (moves, _) in best.items() if c <= count)
            bound = moves_lp_bound(cluster, placement, Budget(10.0))
            assert bound is not None and bound <= fewest, count
