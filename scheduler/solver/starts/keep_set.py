"""Consolidation by decomposition: first choose the hosts to keep, then pack into them.

1. Host selection (a small CP-SAT model, one boolean per host): the fewest hosts whose
   capacity covers the total demand of every resource plus a slack; among those, the hosts
   that run the most VMs now, so that few VMs have to move.
2. Packing: VMs on kept hosts stay; the others go best fit, largest first, onto kept hosts.

If some VM finds no room, the slack grows and both steps run again. On large clusters this
lands within a host or two of the volume bound in a second or two, which a host-by-host
greedy does not when hosts differ in size; the large-neighbourhood search then polishes it.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping

import numpy as np
from ortools.sat.python import cp_model

from scheduler.model import Cluster, Host, HostState
from scheduler.placement.packer import Packer, size_key
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import solve_within

SLACKS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def select_hosts(
    cluster: Cluster,
    placement: Mapping[str, str | None],
    slack: float,
    budget: Budget,
    max_hosts: int | None = None,
) -> list[str] | None:
    """Hosts to keep. With ``max_hosts`` the count is a budget rather than the first aim, and
    the hosts kept are those that let the most VMs stay.

    Hosts of one model (the same capacity) differ only in how many VMs they run, so the
    model decides how many of each to keep, and those kept are the busiest: a handful of
    integers whatever the size of the cluster, where a boolean per host of a few models
    drowns CP-SAT's presolve in symmetric hosts."""
    residents = Counter(h for h in placement.values() if h is not None)
    by_model: dict[tuple[tuple[str, int], ...], list[Host]] = {}
    for h in cluster.hosts:
        if h.state is HostState.UP:
            by_model.setdefault(tuple(sorted(h.capacity.items())), []).append(h)
    model = cp_model.CpModel()
    count: dict[tuple[tuple[str, int], ...], cp_model.IntVar] = {}
    staying: list[cp_model.IntVar] = []
    for key, hosts in by_model.items():
        hosts.sort(key=lambda h: -residents[h.name])  # stable: the snapshot's order breaks ties
        count[key] = model.new_int_var(0, len(hosts), f"keep{len(count)}")
        prefix = [0, *itertools.accumulate(residents[h.name] for h in hosts)]
        kept_residents = model.new_int_var(0, prefix[-1], f"stay{len(count)}")
        model.add_element(count[key], prefix, kept_residents)
        staying.append(kept_residents)
        model.add_hint(count[key], sum(1 for h in hosts if residents[h.name] > 0))
    for resource in cluster.resources:
        demand = sum(v.demand.get(resource, 0) for v in cluster.vms)
        if demand:
            needed = math.ceil(demand * (1 + slack))
            model.add(sum(dict(key).get(resource, 0) * n for key, n in count.items()) >= needed)
    weight = 1 + sum(residents.values())  # one host outweighs every VM staying
    if max_hosts is not None:
        model.add(sum(count.values()) <= max_hosts)
        weight = 0
    model.minimize(weight * sum(count.values()) - sum(staying))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    if solve_within(solver, model, budget) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [h.name for key, hosts in by_model.items() for h in hosts[: solver.value(count[key])]]


def pack_into(
    cluster: Cluster, start: Mapping[str, str | None], keep: list[str]
) -> dict[str, str | None] | None:
    """VMs on ``keep`` stay, the rest are packed onto ``keep``; None if one finds no room."""
    kept = set(keep)
    stays = {vm: (h if h in kept else None) for vm, h in start.items()}
    packer = Packer(cluster, stays)
    mask = np.array([h in kept for h in packer.hosts])
    movers = [vm for vm, h in stays.items() if h is None]
    for vm in sorted(movers, key=size_key(packer), reverse=True):
        target = packer.choose(vm, mask, "best")
        if target is None:
            return None
        packer.move(vm, target)
    return packer.state.placement()


def keep_set_start(
    cluster: Cluster,
    start: Mapping[str, str | None],
    budget: Budget,
    max_hosts: int | None = None,
) -> dict[str, str | None] | None:
    """The tightest slack at which choosing and packing both succeed within the budget, or
    None. Each choice may take a quarter of the budget, and two seconds at most."""
    for slack in SLACKS:
        if budget.exhausted:
            return None
        keep = select_hosts(
            cluster, start, slack, budget.share(min(2.0, budget.limit / 4)), max_hosts
        )
        if keep is None:
            continue
        packed = pack_into(cluster, start, keep)
        if packed is not None:
            return packed
    return None
