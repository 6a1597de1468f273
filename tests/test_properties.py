"""Invariants on generated clusters: every plan the solver emits passes the independent
checker; consolidation never adds active hosts; the result never beats the lower bound."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.engine import decide_plan
from scheduler.model import Goal
from scheduler.placement.ranking import aligned, best_aligned, best_fit, ranked, with_room
from scheduler.planning.check import check_plan
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from tests.conftest import cluster_of

FAST = SearchOptions(SolverSettings(time_limit_s=2.0, workers=1, seed=0))
LNS_ONLY = SearchOptions(
    SolverSettings(time_limit_s=1.0, workers=1, seed=0), full_model_max_pairs=0
)


@st.composite
def clusters(draw: st.DrawFn) -> dict[str, Any]:
    n_hosts = draw(st.integers(2, 6))
    host_mem = draw(st.sampled_from([32, 64]))
    hosts = [
        {"name": f"h{i}", "cpus": 8, "memory": f"{host_mem}GiB", "labels": {"rack": f"r{i % 2}"}}
        for i in range(n_hosts)
    ]
    free = [host_mem] * n_hosts
    vms = []
    for j in range(draw(st.integers(1, 14))):
        mem = draw(st.sampled_from([2, 4, 8, 16]))
        fits = [i for i in range(n_hosts) if free[i] >= mem]
        host = draw(st.sampled_from([*fits, None])) if fits else None
        if host is not None:
            free[host] -= mem
        row: dict[str, Any] = {
            "name": f"v{j}",
            "vcpus": draw(st.integers(1, 4)),
            "memory": f"{mem}GiB",
        }
        if host is not None:
            row["host"] = f"h{host}"
        vms.append(row)
    rules = []
    if len(vms) >= 2 and draw(st.booleans()):
        # Anti-affinity only between VMs that do not share a host now, so today is valid.
        apart = list({row.get("host"): row["name"] for row in vms if "host" in row}.values())
        if len(apart) >= 2:
            rules.append({"type": "anti-affinity", "vms": apart[:3]})
    return {"name": "generated", "hosts": hosts, "vms": vms, "rules": rules,
            "limits": {"max_parallel": draw(st.integers(1, 4)), "max_parallel_per_host": draw(st.integers(1, 2))}}  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.sampled_from(list(Goal)), st.sampled_from([FAST, LNS_ONLY]))
def test_every_plan_passes_the_checker(
    data: dict[str, Any], goal: Goal, options: SearchOptions
) -> None:
    cluster = cluster_of(data)
    evacuate = ["h0"] if goal is Goal.EVACUATE else []
    outcome = decide_plan(cluster, goal, evacuate, options)
    if outcome.plan.unresolved:
        return  # reported as such; nothing unsafe was emitted for those moves
    assert check_plan(outcome.cluster, outcome.plan) == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_consolidation_never_adds_hosts_nor_beats_the_bound(data: dict[str, Any]) -> None:
    cluster = cluster_of(data)
    summary = decide_plan(cluster, Goal.CONSOLIDATE, (), FAST).summary()
    assert summary["lower_bound"] <= summary["active_hosts_after"]
    if not summary["unplaced_or_stranded"] and not summary["placements"]:
        assert summary["active_hosts_after"] <= summary["active_hosts_before"]
    assert summary["moves"] >= summary["moves_lower_bound"]


@st.composite
def free_rooms(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hosts = draw(st.integers(1, 12))
    rows = draw(st.lists(st.lists(st.integers(-4, 40), min_size=3, max_size=3), min_size=hosts,
                         max_size=hosts))  # fmt: skip
    demand = np.array(draw(st.lists(st.integers(0, 20), min_size=3, max_size=3)))
    allowed = np.array(draw(st.lists(st.booleans(), min_size=hosts, max_size=hosts)))
    return np.array(rows, dtype=np.int64, order="F"), demand, allowed


@settings(max_examples=200, deadline=None)
@given(free_rooms())
def test_the_fast_picks_are_the_rankings_first(room: tuple[np.ndarray, ...]) -> None:
    """Best fit and alignment without sorting pick the host their full ranking puts first,
    and a host has room exactly when it holds the demand in every resource."""
    free, demand, allowed = room
    scale = np.maximum(free.max(axis=0), 1).astype(np.float64)
    fitting = [
        i for i in range(len(free)) if allowed[i] and all(free[i] >= demand)
    ]  # fmt: skip
    assert with_room(free, demand, allowed).tolist() == fitting
    for first, rank in ((best_fit, ranked), (best_aligned, aligned)):
        order = rank(free, demand, allowed, scale).tolist()
        assert sorted(order) == fitting
        assert first(free, demand, allowed, scale) == (order[0] if order else None)
    slack = [((free[i] - demand) / scale).sum() for i in ranked(free, demand, allowed, scale)]
    assert all(a <= b + 1e-9 for a, b in pairwise(slack))  # tightest first
