"""The host-closing search: it never breaks capacity or a host restriction, never adds a
host, finds the optimum of packings that first fit gets wrong, and leaves VMs tied by rules
where they are."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.placement.state import PlacementState
from scheduler.solver.budget import WORK_PER_STEP, Budget
from scheduler.solver.closing import steps
from scheduler.solver.closing.on_cluster import close_hosts_of
from scheduler.solver.closing.packing import Packing, active_count
from scheduler.solver.closing.repack import repack
from scheduler.solver.closing.search import close_hosts
from tests.conftest import cluster_of


def steps_budget(steps: int) -> Budget:
    """A deterministic budget of about ``steps`` search steps."""
    return Budget(steps * WORK_PER_STEP, deterministic=True)


def triplets(count: int, seed: int) -> np.ndarray:
    """Items in threes that fill a 100 x 100 bin exactly, shuffled: the optimum is ``count``."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(count):
        a, b = rng.integers(25, 40, size=2), rng.integers(25, 40, size=2)
        items += [a, b, 100 - a - b]
    return np.array(items)[rng.permutation(3 * count)]


def first_fit(capacity: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    free: list[np.ndarray] = []
    at = np.zeros(len(sizes), dtype=np.int64)
    for i, size in enumerate(sizes):
        host = next((h for h, f in enumerate(free) if (f >= size).all()), None)
        if host is None:
            free.append(capacity.copy())
            host = len(free) - 1
        free[host] = free[host] - size
        at[i] = host
    return at


def packing_of(sizes: np.ndarray, capacity: np.ndarray, hosts: int) -> Packing:
    kind, allowed = np.zeros(len(sizes), dtype=np.int64), np.ones((1, hosts), dtype=bool)
    return Packing(np.tile(capacity, (hosts, 1)), sizes, kind, allowed, np.zeros(hosts, dtype=bool))


def test_triplets_are_packed_to_the_optimum() -> None:
    capacity = np.array([100, 100])
    sizes = triplets(8, seed=3)
    start = first_fit(capacity, sizes)
    packing = packing_of(sizes, capacity, len(sizes))
    assert active_count(packing, start) > 8  # first fit in a shuffled order misses it
    found = close_hosts(packing, start, floor=8, budget=steps_budget(3000), seed=0)
    assert active_count(packing, found) == 8
    load = np.zeros((len(sizes), 2), dtype=np.int64)
    np.add.at(load, found, sizes)
    assert (load <= capacity).all()


def test_a_step_budget_gives_the_same_answer_twice() -> None:
    capacity = np.array([100, 100])
    sizes = triplets(12, seed=5)
    packing = packing_of(sizes, capacity, len(sizes))
    start = first_fit(capacity, sizes)
    first = close_hosts(packing, start, floor=12, budget=steps_budget(400), seed=1)
    assert (close_hosts(packing, start, floor=12, budget=steps_budget(400), seed=1) == first).all()


@st.composite
def packings(draw: st.DrawFn) -> tuple[Packing, np.ndarray]:
    hosts = draw(st.integers(2, 8))
    resources = draw(st.integers(1, 3))
    capacity = np.array(
        [[draw(st.integers(10, 20)) for _ in range(resources)] for _ in range(hosts)]
    )
    room = capacity.copy()
    always_on = np.zeros(hosts, dtype=bool)
    if draw(st.booleans()):  # a VM that stays, taking room on host 0
        room[0] -= 3
        always_on[0] = True
    sizes, at = [], []
    free = room.copy()
    for _ in range(draw(st.integers(2, 20))):
        size = np.array([draw(st.integers(0, 6)) for _ in range(resources)])
        fits = [h for h in range(hosts) if (free[h] >= size).all()]
        if fits:
            host = draw(st.sampled_from(fits))
            free[host] -= size
            sizes.append(size)
            at.append(host)
    if len(sizes) < 2:
        sizes, at = [np.zeros(resources, dtype=np.int64)] * 2, [0, 0]
    allowed = np.array(
        [[h == host or draw(st.booleans()) for h in range(hosts)] for host in at]
    )  # fmt: skip
    kind = np.arange(len(at))  # a row of its own for each VM: the most general table
    return Packing(room, np.array(sizes), kind, allowed, always_on), np.array(at)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packings(), st.integers(0, 3))
def test_the_search_keeps_capacity_and_restrictions(
    case: tuple[Packing, np.ndarray], seed: int
) -> None:
    packing, start = case
    found = close_hosts(packing, start, floor=1, budget=steps_budget(300), seed=seed)
    assert len(found) == len(start) and (found >= 0).all()
    load = np.zeros_like(packing.room)
    np.add.at(load, found, packing.sizes)
    assert (load <= packing.room).all()
    assert packing.allowed[packing.kind, found].all()
    assert active_count(packing, found) <= active_count(packing, start)


def test_vms_tied_by_rules_stay_and_pins_hold() -> None:
    hosts = [{"name": f"h{i}", "cpus": 16, "memory": "64GiB"} for i in range(6)]
    vms = [
        {"name": f"v{i}", "vcpus": 2, "memory": f"{8 + 4 * (i % 3)}GiB", "host": f"h{i % 6}"}
        for i in range(18)
    ]
    rules = [
        {"type": "anti-affinity", "vms": ["v0", "v1"]},
        {"type": "pin", "vms": ["v2"], "hosts": ["h2", "h3"]},
    ]
    cluster = cluster_of({"name": "tied", "hosts": hosts, "vms": vms, "rules": rules})
    start = cluster.current_placement
    found = close_hosts_of(cluster, start, steps_budget(2000))
    assert found["v0"] == "h0" and found["v1"] == "h1"
    assert found["v2"] in ("h2", "h3")
    used = {h for h in found.values() if h is not None}
    assert len(used) < 6
    load = PlacementState(cluster, found).load
    assert all(load[h.name].get(r, 0) <= h.capacity[r] for h in cluster.hosts for r in h.capacity)


def test_an_exact_repack_finds_the_packing_or_says_there_is_none() -> None:
    # Two hosts of 10 x 10; four VMs that fit only paired as (6, 4) + (4, 6) twice.
    sizes = np.array([[6, 4], [6, 4], [4, 6], [4, 6]])
    kind, allowed = np.arange(4), np.ones((4, 2), dtype=bool)
    packing = Packing(np.full((2, 2), 10), sizes, kind, allowed, np.zeros(2, dtype=bool))
    homes = repack(packing, [0, 1, 2, 3], [0, 1], {0: 0, 1: 0}, work())
    assert homes is not None and sorted(homes) == [0, 1, 2, 3]
    for host in (0, 1):
        assert (sizes[[vm for vm, h in homes.items() if h == host]].sum(axis=0) <= 10).all()
    assert repack(packing, [0, 1, 2, 3], [0], {}, work()) is None  # one host: no room
    pinned = packing.allowed.copy()
    pinned[[0, 1], 1] = False  # both (6, 4) VMs only on host 0: 12 > 10
    assert repack(Packing(packing.room, sizes, kind, pinned, packing.always_on),
                  [0, 1, 2, 3], [0, 1], {}, work()) is None  # fmt: skip


def work() -> Budget:
    return Budget(5.0, deterministic=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packings(), st.integers(0, 3))
def test_the_compiled_steps_keep_their_books(case: tuple[Packing, np.ndarray], seed: int) -> None:
    """Step by step, the room left, the VMs of each host and the pool all agree with where
    the VMs are, and no step puts a VM where it may not go or where it does not fit; nor
    does giving up, when the pool goes back onto the reopened hosts."""
    packing, start = case
    s = steps.arrays_for(
        packing.sizes, packing.room, packing.kind, packing.allowed, start, packing.always_on
    )
    steps.seed(seed)
    s = steps.close(s, np.flatnonzero(s.is_open & ~packing.always_on)[:3])
    for _ in range(30):
        stop, _taken = steps.run_steps(s, 1, 1000, 7)
        _assert_books_agree(packing, s)
        if stop == steps.FOUND:
            return
    if steps.reopen(s):
        assert (s.at >= 0).all()
    _assert_books_agree(packing, s)


def _assert_books_agree(packing: Packing, s: steps.Arrays) -> None:
    placed = s.at >= 0
    load = np.zeros_like(packing.room)
    np.add.at(load, s.at[placed], packing.sizes[placed])
    assert (s.free == packing.room - load).all() and (s.free >= 0).all()
    assert packing.allowed[packing.kind[placed], s.at[placed]].all()
    for host in range(len(packing.room)):
        assert sorted(s.members[host, : s.held[host]]) == list(np.flatnonzero(s.at == host))
    assert sorted(s.pool[: s.counters[steps.POOL]]) == list(np.flatnonzero(~placed))
