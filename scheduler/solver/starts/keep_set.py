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

import math
import time
from collections.abc import Mapping

import numpy as np
from ortools.sat.python import cp_model

from scheduler.model import Cluster, HostState
from scheduler.placement.packer import Packer, size_key

SLACKS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def select_hosts(
    cluster: Cluster,
    placement: Mapping[str, str | None],
    slack: float,
    time_limit_s: float = 2.0,
    max_hosts: int | None = None,
    deterministic: bool = False,
) -> list[str] | None:
    """Hosts to keep. With ``max_hosts`` the count is a budget rather than the first aim, and
    the hosts kept are those that let the most VMs stay."""
    usable = [h for h in cluster.hosts if h.state is HostState.UP]
    residents = {h.name: 0 for h in usable}
    for host in placement.values():
        if host in residents:
            residents[host] += 1
    model = cp_model.CpModel()
    keep = {h.name: model.new_bool_var(f"keep[{h.name}]") for h in usable}
    for resource in cluster.resources:
        demand = sum(v.demand.get(resource, 0) for v in cluster.vms)
        if demand:
            needed = math.ceil(demand * (1 + slack))
            model.add(sum(h.capacity.get(resource, 0) * keep[h.name] for h in usable) >= needed)
    weight = 1 + sum(residents.values())  # one host outweighs every VM staying
    if max_hosts is not None:
        model.add(sum(keep.values()) <= max_hosts)
        weight = 0
    model.minimize(sum((weight - residents[h]) * var for h, var in keep.items()))
    for h, var in keep.items():
        model.add_hint(var, residents[h] > 0)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    if deterministic:
        solver.parameters.max_deterministic_time = time_limit_s
        solver.parameters.max_time_in_seconds = 60 * time_limit_s
    solver.parameters.num_workers = 1
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return [h for h, var in keep.items() if solver.boolean_value(var)]


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
    deadline_s: float = 10.0,
    max_hosts: int | None = None,
    deterministic: bool = False,
) -> dict[str, str | None] | None:
    """The tightest slack at which choosing and packing both succeed within ``deadline_s``,
    or None."""
    ends = time.monotonic() + deadline_s
    for slack in SLACKS:
        remaining = deadline_s if deterministic else ends - time.monotonic()
        if remaining <= 0:
            return None
        limit = min(2.0, deadline_s / 4, remaining)
        keep = select_hosts(cluster, start, slack, limit, max_hosts, deterministic)
        if keep is None:
            continue
        packed = pack_into(cluster, start, keep)
        if packed is not None:
            return packed
    return None
