"""The exact small packings of the host-closing search, checked against trying every way:
the heaviest set that fits one host (refills) and a home for every VM on a few hosts (the
pool's last step)."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.solver.closing.knapsack import best_subset, pack_into


def vm_sizes(draw: st.DrawFn, count: int, resources: int) -> np.ndarray:
    return np.array(
        [[draw(st.integers(0, 10)) for _ in range(resources)] for _ in range(count)],
        dtype=np.int64,
    ).reshape(count, resources)


@st.composite
def items(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    resources = draw(st.integers(1, 3))
    count = draw(st.integers(0, 9))
    sizes = vm_sizes(draw, count, resources)
    weight = np.array([draw(st.integers(1, 20)) / 4 for _ in range(count)])
    room = np.array([draw(st.integers(0, 25)) for _ in range(resources)], dtype=np.int64)
    order = np.argsort(-weight, kind="stable")
    return sizes[order], weight[order], room


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items())
def test_the_heaviest_set_that_fits(case: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    sizes, weight, room = case
    chosen, value = best_subset(sizes, weight, room, 100_000)
    assert (sizes[chosen].sum(axis=0) <= room).all()
    assert abs(weight[chosen].sum() - value) < 1e-9
    best = max(
        (weight[list(subset)].sum()
         for k in range(len(weight) + 1)
         for subset in itertools.combinations(range(len(weight)), k)
         if (sizes[list(subset)].sum(axis=0) <= room).all()),
        default=0.0,
    )  # fmt: skip
    assert abs(value - best) < 1e-9


def test_a_node_limit_still_gives_a_set_that_fits() -> None:
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 30, size=(40, 3))
    weight = np.sort(rng.random(40))[::-1].copy()
    chosen, value = best_subset(sizes, weight, np.array([100, 100, 100]), 50)
    assert (sizes[chosen].sum(axis=0) <= 100).all() and value > 0


@st.composite
def pools(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    resources = draw(st.integers(1, 3))
    count = draw(st.integers(0, 7))
    hosts = draw(st.integers(1, 3))
    sizes = vm_sizes(draw, count, resources)
    rooms = np.array(
        [[draw(st.sampled_from([8, 10, 12])) for _ in range(resources)] for _ in range(hosts)],
        dtype=np.int64,
    )  # few distinct rooms, so that alike hosts occur
    allowed = np.array(
        [[draw(st.integers(0, 5)) > 0 for _ in range(hosts)] for _ in range(count)], dtype=bool
    ).reshape(count, hosts)
    order = np.argsort(-sizes.sum(axis=1), kind="stable")
    return sizes[order], allowed[order], rooms


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools())
def test_a_home_for_every_vm_when_one_exists(
    case: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    sizes, allowed, rooms = case
    home = pack_into(sizes, allowed, rooms, 1_000_000)
    exists = any(
        all(allowed[vm, host] for vm, host in enumerate(homes))
        and all((sizes[np.array(homes) == h].sum(axis=0) <= rooms[h]).all()
                for h in range(len(rooms)))
        for homes in itertools.product(range(len(rooms)), repeat=len(sizes))
    )  # fmt: skip
    if not exists:
        assert (home == -1).all()
        return
    assert (home >= 0).all() and allowed[np.arange(len(sizes)), home].all()
    for host in range(len(rooms)):
        assert (sizes[home == host].sum(axis=0) <= rooms[host]).all()


def test_out_of_nodes_means_no_home_claimed() -> None:
    sizes = np.full((12, 1), 4, dtype=np.int64)
    rooms = np.array([[24], [24]], dtype=np.int64)  # six on each: a home exists
    allowed = np.ones((12, 2), dtype=bool)
    assert (pack_into(sizes, allowed, rooms, 5) == -1).all()
    assert (pack_into(sizes, allowed, rooms, 1_000) >= 0).all()
