"""The refill knapsack: the heaviest set that fits, checked against trying every set."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.solver.knapsack import best_subset


@st.composite
def items(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    resources = draw(st.integers(1, 3))
    count = draw(st.integers(0, 9))
    sizes = np.array(
        [[draw(st.integers(0, 10)) for _ in range(resources)] for _ in range(count)],
        dtype=np.int64,
    ).reshape(count, resources)
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
