"""Packing from scratch by column generation: the pricing against trying every set, the
dive's packing and LP bound against the true fewest hosts, and the dive inside ``decide``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.model import Goal, active_hosts
from scheduler.planning.check import check_placement
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolveStatus
from scheduler.solver.dive.lp_dive import _first_fit, dive
from scheduler.solver.dive.pricing import PRICE, valuable_sets
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide
from tests.conftest import cluster_of, hosts, vm

FAR = 1e9  # seconds: a budget never spent


@st.composite
def pricing_cases(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    resources = draw(st.integers(1, 3))
    count = draw(st.integers(1, 9))
    sizes = np.array(
        [[draw(st.integers(0, 10)) for _ in range(resources)] for _ in range(count)],
        dtype=np.int64,
    ).reshape(count, resources)
    value = np.array([draw(st.integers(0, 12)) / 16 for _ in range(count)])
    room = np.array([draw(st.integers(1, 25)) for _ in range(resources)], dtype=np.int64)
    order = np.argsort(-value, kind="stable")
    return sizes[order], value[order], room


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pricing_cases())
def test_pricing_finds_the_best_set_each_item_leads(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    sizes, value, room = case
    sets, values, complete = valuable_sets(sizes, value, room, len(value), 1_000_000)
    assert complete
    best_of_lead: dict[int, float] = {}
    for k in range(1, len(value) + 1):
        for subset in itertools.combinations(range(len(value)), k):
            worth = value[list(subset)].sum()
            if (sizes[list(subset)].sum(axis=0) <= room).all() and worth > PRICE:
                best_of_lead[subset[0]] = max(best_of_lead.get(subset[0], 0.0), worth)
    assert len(sets) == len(best_of_lead)
    for chosen, worth in zip(sets, values, strict=True):
        assert (sizes[chosen].sum(axis=0) <= room).all()
        assert abs(value[chosen].sum() - worth) < 1e-9
        lead = int(np.flatnonzero(chosen)[0])
        assert abs(best_of_lead[lead] - worth) < 1e-9


def partitions(items: list[int]) -> Iterator[list[list[int]]]:
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for smaller in partitions(rest):
        yield [[first], *smaller]
        for i in range(len(smaller)):
            yield [*smaller[:i], [first, *smaller[i]], *smaller[i + 1 :]]


def fewest_hosts(sizes: np.ndarray, room: np.ndarray) -> int:
    return min(
        len(p)
        for p in partitions(list(range(len(sizes))))
        if all((sizes[part].sum(axis=0) <= room).all() for part in p)
    )


@st.composite
def packings(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    resources = draw(st.integers(1, 3))
    count = draw(st.integers(1, 7))
    room = np.array([draw(st.integers(5, 20)) for _ in range(resources)], dtype=np.int64)
    sizes = np.array(
        [[draw(st.integers(0, int(room[r]))) for r in range(resources)] for _ in range(count)],
        dtype=np.int64,
    ).reshape(count, resources)
    return sizes, room


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packings())
def test_the_dive_packs_every_vm_and_its_bound_is_never_above_the_fewest_hosts(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    sizes, room = case
    found = dive(sizes, room, [], Budget(FAR))
    assert found is not None
    placed = np.concatenate(found.contents)
    assert sorted(placed.tolist()) == list(range(len(sizes)))
    for content in found.contents:
        assert (sizes[content].sum(axis=0) <= room).all()
    best = fewest_hosts(sizes, room)
    assert found.lower_bound is not None
    assert found.lower_bound <= best <= len(found.contents)


def test_a_pure_packing_of_exact_triples_is_proven_optimal_by_the_dive() -> None:
    """Thirty hosts filled exactly by triples of VMs, shuffled: first fit leaves gaps, the
    LP bound is thirty, and the dive finds the thirty triples."""
    rng = np.random.default_rng(7)
    vms = []
    for t in range(30):
        cpus = sorted(rng.choice(np.arange(1, 16), 2, replace=False))
        memory = sorted(rng.choice(np.arange(1, 64), 2, replace=False))
        parts = zip(np.diff([0, *cpus, 16]), np.diff([0, *memory, 64]), strict=True)
        vms += [vm(f"t{t}-{i}", f"{m}GiB", vcpus=int(c)) for i, (c, m) in enumerate(parts)]
    order = rng.permutation(len(vms))
    assert_the_dive_proves([vms[i] for i in order], 45, 30)


def assert_the_dive_proves(vms: list[dict[str, Any]], count: int, fewest: int) -> None:
    """``vms``, all waiting for ``count`` hosts of 16 vCPUs and 64 GiB, are packed by the
    dive into ``fewest`` hosts, proven the fewest by its LP."""
    cluster = cluster_of({
        "name": "from-scratch",
        "hosts": hosts(count, cpus=4, memory="64GiB"),  # 4 cpus: 16 vCPUs at 4x overcommit
        "vms": vms,
    })  # fmt: skip
    decision = decide(cluster, Goal.CONSOLIDATE, options=SearchOptions())
    assert decision.method == "dive"
    assert decision.status is SolveStatus.OPTIMAL
    assert decision.hosts_lower_bound == fewest
    assert len(active_hosts(decision.placement)) == fewest
    assert check_placement(cluster, decision.placement) == []


def test_a_dive_out_of_time_gives_up_and_first_fit_packs_what_a_late_dive_leaves() -> None:
    rng = np.random.default_rng(3)
    sizes = rng.integers(1, 60, size=(40, 2))
    room = np.array([100, 100], dtype=np.int64)
    assert dive(sizes, room, [], Budget(0.0)) is None  # not even the first LP in time
    contents = _first_fit(sizes, room, np.arange(40))
    assert sorted(np.concatenate(contents).tolist()) == list(range(40))
    assert all((sizes[c].sum(axis=0) <= room).all() for c in contents)
