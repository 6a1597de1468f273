"""Consolidation by decomposition: first choose the hosts to keep, then pack into them.

1. Host selection (a small CP-SAT model, an integer per host model): the fewest hosts whose
   capacity covers the total demand of every resource plus a slack; among those, the hosts
   that run the most VMs now, so that few VMs have to move.
2. Packing: VMs on kept hosts stay; the others go largest first onto kept hosts, by
   alignment (two resources scarce at once stay in step), or best fit where that strands one.

The slack is found by bisection: where some VM finds no room, it grows. On large clusters this
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

from scheduler.model import Cluster, HaPolicy, Host, HostState
from scheduler.placement.packer import Packer, size_key
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import solve_within

Kind = tuple[tuple[tuple[str, int], ...], str | None]  # capacity, failure domain

SLACKS = (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12, 0.2)


def select_hosts(
    cluster: Cluster,
    placement: Mapping[str, str | None],
    slack: float,
    budget: Budget,
    max_hosts: int | None = None,
    reserve: HaPolicy | None = None,
) -> list[str] | None:
    """Hosts to keep. With ``max_hosts`` the count is a budget rather than the first aim, and
    the hosts kept are those that let the most VMs stay. With a ``reserve``, the hosts kept
    must still cover the demand after any failure it names: without any failure domain, and
    without the largest hosts kept, as many as the host failures to tolerate.

    Hosts of one model (the same capacity) in one failure domain differ only in how many VMs
    they run, so the model decides how many of each to keep, and those kept are the busiest:
    a handful of integers whatever the size of the cluster, where a boolean per host of a few
    models drowns CP-SAT's presolve in symmetric hosts."""
    residents = Counter(h for h in placement.values() if h is not None)
    label = reserve.failure_domain if reserve is not None else None
    by_model: dict[Kind, list[Host]] = {}
    for h in cluster.hosts:
        if h.state is HostState.UP:
            domain = h.labels.get(label) if label is not None else None
            by_model.setdefault((tuple(sorted(h.capacity.items())), domain), []).append(h)
    model = cp_model.CpModel()
    count: dict[Kind, cp_model.IntVar] = {}
    staying: list[cp_model.IntVar] = []
    for key, hosts in by_model.items():
        hosts.sort(key=lambda h: -residents[h.name])  # stable: the snapshot's order breaks ties
        count[key] = model.new_int_var(0, len(hosts), f"keep{len(count)}")
        counts = [residents[h.name] for h in hosts]
        prefix = [0, *itertools.accumulate(counts)]
        kept_residents = model.new_int_var(0, prefix[-1], f"stay{len(count)}")
        # The VMs on the n busiest hosts grow ever more slowly with n: the least of the lines
        # through each run of equal counts. A handful of lines, where a table of every n
        # left CP-SAT without an answer in seconds on 5,000 hosts.
        for k, here in enumerate(counts):
            if k == 0 or here != counts[k - 1]:
                model.add(kept_residents <= prefix[k] + here * (count[key] - k))
        staying.append(kept_residents)
        model.add_hint(count[key], sum(1 for h in hosts if residents[h.name] > 0))
    failures = reserve.host_failures_to_tolerate if reserve is not None else 0
    domains = {key[1] for key in count if key[1] is not None}
    for resource in cluster.resources:
        demand = sum(v.demand.get(resource, 0) for v in cluster.vms)
        if not demand:
            continue
        needed = math.ceil(demand * (1 + slack))
        room = {key: dict(key[0]).get(resource, 0) for key in count}
        # N+k: the k largest hosts of any model may fail (a bound that errs on the safe side).
        largest = max(room.values(), default=0)
        model.add(sum(room[key] * n for key, n in count.items()) - failures * largest >= needed)
        for domain in sorted(domains):  # one domain down: the others carry everything
            model.add(sum(room[key] * n for key, n in count.items() if key[1] != domain) >= needed)
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
    """VMs on ``keep`` stay, the rest are packed onto ``keep``, largest first: by alignment
    (which keeps two scarce resources in step), and where that strands a VM, best fit; None
    if neither finds room for every VM."""
    for fit in ("aligned", "best"):
        packed = _packed(cluster, start, set(keep), fit)
        if packed is not None:
            return packed
    return None


def _packed(
    cluster: Cluster, start: Mapping[str, str | None], kept: set[str], fit: str
) -> dict[str, str | None] | None:
    stays = {vm: (h if h in kept else None) for vm, h in start.items()}
    packer = Packer(cluster, stays)
    mask = np.array([h in kept for h in packer.hosts])
    movers = [vm for vm, h in stays.items() if h is None]
    for vm in sorted(movers, key=size_key(packer), reverse=True):
        target = packer.choose(vm, mask, fit)
        if target is None:
            return None
        packer.move(vm, target)
    return packer.state.placement()


def keep_set_start(
    cluster: Cluster,
    start: Mapping[str, str | None],
    budget: Budget,
    max_hosts: int | None = None,
    reserve: HaPolicy | None = None,
) -> dict[str, str | None] | None:
    """The packing at the tightest slack where choosing and packing both succeed: no slack,
    else found by bisection over ``SLACKS`` (packing succeeds more often as the slack grows,
    choosing hosts under ``max_hosts`` less often), or None. Each choice may take a quarter
    of the budget, and two seconds at most."""
    best = None
    low, high = 0, len(SLACKS) - 1
    tries = 0
    while low <= high and not budget.exhausted:
        # No slack at all first: it often packs, and then one try is all it takes.
        middle = low if tries == 0 else (low + high) // 2
        tries += 1
        share = budget.share(min(2.0, budget.limit / 4))
        keep = select_hosts(cluster, start, SLACKS[middle], share, max_hosts, reserve)
        packed = pack_into(cluster, start, keep) if keep is not None else None
        if keep is None or packed is not None:  # no hosts hold that much more: less slack
            best, high = packed or best, middle - 1
        else:
            low = middle + 1
    return best
