"""The dive over VM sizes: its packing and LP bound against the true fewest hosts (every
partition tried, as in ``test_lp_dive``), and inside ``decide`` on many small VMs."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.solver.budget import Budget
from scheduler.solver.dive.by_type import typed_dive, types_of
from tests.conftest import vm
from tests.test_lp_dive import assert_the_dive_proves, fewest_hosts

FAR = 1e9  # seconds: a budget never spent


@st.composite
def packings_in_few_sizes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    kinds = [
        [draw(st.integers(1, 10)), draw(st.integers(0, 10))] for _ in range(draw(st.integers(1, 3)))
    ]
    rows = [kinds[draw(st.integers(0, len(kinds) - 1))] for _ in range(draw(st.integers(1, 9)))]
    return np.array(rows, dtype=np.int64), np.array([10, 10], dtype=np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packings_in_few_sizes())
def test_the_dive_over_sizes_packs_every_vm_and_its_bound_is_never_above_the_fewest(
    case: tuple[np.ndarray, np.ndarray],
) -> None:
    sizes, room = case
    kinds, counts, kind_of = types_of(sizes)
    assert (kinds[kind_of] == sizes).all()
    found = typed_dive(kinds, counts, room, Budget(FAR))
    assert found is not None
    assert (np.sum(found.contents, axis=0) == counts).all()
    assert all((content @ kinds <= room).all() for content in found.contents)
    best = fewest_hosts(sizes, room)
    assert found.lower_bound is not None
    assert found.lower_bound <= best <= len(found.contents)


def test_sizes_that_do_not_pair_up_get_a_bound_above_the_volume() -> None:
    # Ten VMs of 6/10 and twenty of 3/10 of a host: a host takes a large and a small or
    # three small, so 10 + 4 hosts, although the volume fills 12.
    kinds = np.array([[3, 3], [6, 6]], dtype=np.int64)
    found = typed_dive(kinds, np.array([20, 10]), np.array([10, 10], dtype=np.int64), Budget(FAR))
    assert found is not None
    assert found.lower_bound == len(found.contents) == 14


def test_no_time_for_the_first_lp_gives_no_dive() -> None:
    kinds = np.array([[3, 3]], dtype=np.int64)
    room = np.array([10, 10], dtype=np.int64)
    assert typed_dive(kinds, np.array([5]), room, Budget(0.0)) is None


def test_many_small_vms_in_three_flavours_are_packed_exactly_and_proven() -> None:
    """Four of 3 vCPUs / 4 GiB with four of 1 vCPU / 12 GiB fill a host of 16 vCPUs and
    64 GiB, as do eight of 2 vCPUs / 8 GiB: 160 VMs, eight to a host, in 20 hosts."""
    rows = [vm(f"a{i:02d}", "4GiB", vcpus=3) for i in range(40)]
    rows += [vm(f"b{i:02d}", "12GiB", vcpus=1) for i in range(40)]
    rows += [vm(f"c{i:02d}", "8GiB", vcpus=2) for i in range(80)]
    order = np.random.default_rng(5).permutation(len(rows))
    assert_the_dive_proves([rows[i] for i in order], 40, 20)
