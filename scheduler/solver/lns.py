"""Large-neighbourhood search: improve a placement by re-solving small parts of it.

Each step frees the VMs of a few hosts, solves that sub-model exactly with CP-SAT (everything
else held where it is), and keeps the result if the whole placement scores better. Which
hosts make a neighbourhood depends on the goal:

- consolidate: one or two hosts that are cheap to empty (few VMs), plus receivers with room;
  hosts that resisted closing are tried less often;
- balance: the most and the least utilised hosts;
- place / evacuate: hosts with room, around the VMs that have no host yet.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from scheduler.model import Cluster, Goal, add_into
from scheduler.placement.evaluate import score
from scheduler.solver.bounds import active_hosts_lower_bound, moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.encoding import Encoding
from scheduler.solver.cpsat.solve import solve
from scheduler.solver.options import SearchOptions
from scheduler.solver.scope import make_scope, must_leave, pending

MIN_STEP_S = 0.3
MAX_STEP_S = 3.0
MIN_STEP_WORK = 0.01  # work a neighbourhood costs at least, so that a deterministic run ends


def improve(
    cluster: Cluster,
    goal: Goal,
    start: Mapping[str, str | None],
    movable: set[str],
    budget: Budget,
    options: SearchOptions,
) -> tuple[dict[str, str | None], int]:

    rng = random.Random(options.solver.seed)
    incumbent, best = _Incumbent(cluster, start), score(cluster, goal, start)
    resisted: Counter[str] = Counter()
    leaving = set(must_leave(cluster, goal))
    waiting = {vm for vm in pending(cluster) if start.get(vm) is None}
    groups = _affinity_groups(cluster)
    usable = [h.name for h in cluster.hosts if h.accepts_vms]
    at_bounds = _Bounds(cluster)
    iterations = 0
    while (remaining := budget.left()) > MIN_STEP_S:
        if goal is Goal.CONSOLIDATE and at_bounds(best):
            break  # hosts and moves both at their lower bounds: nothing left to gain
        iterations += 1
        # Consolidation alternates: hosts to close, then moves to undo.
        homecoming = None
        if goal is Goal.CONSOLIDATE and iterations % 2 == 0:
            homecoming = _homecoming(incumbent, rng, options.neighbourhood_vms)
        hosts, focus = homecoming or _neighbourhood(
            cluster, goal, incumbent, usable, rng, resisted, options.neighbourhood_vms
        )
        free = _free_vms(incumbent, hosts, movable, groups, rng, options.neighbourhood_vms)
        if not free:
            break
        scope = make_scope(cluster, free, hosts, incumbent.placement, waiting, leaving)
        workers = options.solver.workers or min(
            2, os.cpu_count() or 1
        )  # short solves: no portfolio
        settings = replace(options.solver, workers=workers, seed=options.solver.seed + iterations)
        step = budget.share(min(MAX_STEP_S, remaining))
        result = solve(
            Encoding(cluster, scope), goal, settings, hint=incumbent.placement, budget=step
        )
        budget.charge(max(0.0, MIN_STEP_WORK - result.work))  # trivial steps still count
        candidate = result.placement
        # A sub-model that moved nothing scores as the incumbent: only a change is scored.
        changed = candidate is not None and incumbent.differs(candidate, free)
        if candidate is not None and changed and (new := score(cluster, goal, candidate)) < best:
            incumbent.take(candidate, free)
            best = new
        else:
            resisted.update(focus)
        if options.progress is not None:
            fraction = budget.spent() / max(1e-9, budget.limit)
            options.progress(f"improving: step {iterations}, score {best}", min(1.0, fraction))
    return incumbent.placement, iterations


class _Incumbent:
    """The best placement so far with its residents and loads per host, updated VM by VM
    when a sub-model improves it: each step reads them, and recounting 10,000 VMs per step
    cost more than the solve."""

    def __init__(self, cluster: Cluster, placement: Mapping[str, str | None]) -> None:
        self.cluster = cluster
        self.placement = dict(placement)
        self.residents: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
        self.loads: dict[str, dict[str, int]] = {h.name: {} for h in cluster.hosts}
        self.homeless: set[str] = set()
        # host -> its VMs that the incumbent moves elsewhere: the moves that may be undone
        self.exiles: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
        self.home = {v.name: v.host for v in cluster.vms}
        for vm, host in self.placement.items():
            self._add(vm, host)

    def _add(self, vm: str, host: str | None, sign: int = 1) -> None:
        home = self.home[vm]
        if home is not None and home != host and home in self.exiles:
            (self.exiles[home].add if sign > 0 else self.exiles[home].discard)(vm)
        if host is None:
            (self.homeless.add if sign > 0 else self.homeless.discard)(vm)
            return
        (self.residents[host].add if sign > 0 else self.residents[host].discard)(vm)
        add_into(self.loads[host], self.cluster.vm_by_name[vm].demand, sign)

    def differs(self, candidate: Mapping[str, str | None], free: list[str]) -> bool:
        return any(candidate.get(vm) != self.placement[vm] for vm in free)

    def take(self, candidate: Mapping[str, str | None], free: list[str]) -> None:
        """Adopt ``candidate``, which differs from the incumbent only on ``free`` VMs."""
        for vm in free:
            old, new = self.placement[vm], candidate.get(vm)
            if old != new:
                self._add(vm, old, -1)
                self._add(vm, new)
                self.placement[vm] = new


class _Bounds:
    """Whether a consolidation's score is at the lower bounds of hosts and moves (computed
    once per host count: they depend on the cluster alone)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.hosts = active_hosts_lower_bound(cluster)
        self.moves: dict[int, int] = {}

    def __call__(self, best: tuple[float, ...]) -> bool:
        missing, hosts, soft, moves = best[0], int(best[1]), best[2], best[3]
        if missing or soft or hosts > self.hosts:
            return False
        if hosts not in self.moves:
            self.moves[hosts] = moves_lower_bound(self.cluster, hosts)
        return moves <= self.moves[hosts]


def _affinity_groups(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    for rule in cluster.hard_rules:
        for vm in rule.wave_group:
            groups[vm] = tuple(sorted(set(groups.get(vm, ())) | set(rule.wave_group)))
    return groups


def _free_vms(
    incumbent: _Incumbent,
    hosts: list[str],
    movable: set[str],
    groups: Mapping[str, tuple[str, ...]],
    rng: random.Random,
    budget: int,
) -> list[str]:
    free = [vm for h in hosts for vm in sorted(incumbent.residents[h]) if vm in movable]
    homeless = sorted(vm for vm in incumbent.homeless if vm in movable)
    free += rng.sample(homeless, min(len(homeless), max(1, budget // 4)))
    # An affinity group is free only as a whole, and only if all of it is inside.
    chosen = set(free)
    return [vm for vm in free if all(m in chosen for m in groups.get(vm, (vm,)))]


def _neighbourhood(
    cluster: Cluster,
    goal: Goal,
    incumbent: _Incumbent,
    usable: list[str],
    rng: random.Random,
    resisted: Counter[str],
    budget: int,
) -> tuple[list[str], list[str]]:
    """(hosts of the sub-model, the hosts it is meant to relieve)."""
    residents = incumbent.residents
    active = [h for h in usable if residents[h]]
    free_share = _free_share(cluster, incumbent.loads, usable)
    if goal is Goal.CONSOLIDATE and active:
        ranked = sorted(active, key=lambda h: (resisted[h], len(residents[h]), -free_share[h]))
        focus = rng.sample(ranked[: min(8, len(ranked))], k=min(len(ranked), rng.choice((1, 1, 2))))
        pool = [h for h in active if h not in focus]
        weights = [free_share[h] + 0.01 for h in pool]
    elif goal is Goal.BALANCE and active:
        ranked = sorted(active, key=lambda h: free_share[h])
        k = max(1, min(len(ranked) // 4, 6))
        focus = ranked[:k] + ranked[-k:]
        pool = [h for h in active if h not in focus]
        weights = [1.0] * len(pool)
    else:
        focus = []
        pool = list(usable)
        weights = [free_share[h] + 0.01 for h in pool]
    hosts = list(dict.fromkeys(focus))
    count = sum(len(residents.get(h, ())) for h in hosts)
    order = _weighted_order(pool, weights, rng)
    for host in order:
        if count >= budget and len(hosts) >= 2:
            break
        hosts.append(host)
        count += len(residents.get(host, ()))
    return hosts, focus


def _homecoming(
    incumbent: _Incumbent, rng: random.Random, budget: int
) -> tuple[list[str], list[str]] | None:
    """Moves to undo: an active host whose own VMs the incumbent sends elsewhere, with the
    hosts that hold them (those holding the most first), so that the sub-model can bring
    them home by moving others aside. The search for hosts moves many VMs that need not
    move; this is where it takes them back. None if no active host has VMs away."""
    residents = incumbent.residents
    away = [h for h, vms in incumbent.exiles.items() if vms and residents[h]]
    if not away:
        return None
    away.sort(key=lambda h: len(incumbent.exiles[h]), reverse=True)
    home = rng.choice(away[:8])
    holders = Counter(incumbent.placement[vm] for vm in incumbent.exiles[home])
    hosts, count = [home], len(residents[home])
    for holder, _ in sorted(holders.items(), key=lambda item: (-item[1], str(item[0]))):
        if holder is None or count >= budget:
            continue
        hosts.append(holder)
        count += len(residents[holder])
    return hosts, []  # a failure here says nothing about closing the host


def _weighted_order(pool: list[str], weights: list[float], rng: random.Random) -> list[str]:
    if not pool:
        return []
    keys = np.array([rng.random() ** (1.0 / max(w, 0.01)) for w in weights])  # weighted order
    return [pool[i] for i in np.argsort(-keys)]


def _free_share(
    cluster: Cluster, loads: Mapping[str, Mapping[str, int]], usable: list[str]
) -> dict[str, float]:
    """Per host, the smallest free fraction over its resources (room for one more VM)."""
    share = {}
    for host in usable:
        capacity = cluster.host_by_name[host].capacity
        share[host] = min(
            (1 - loads[host].get(r, 0) / c for r, c in capacity.items() if c > 0), default=0.0
        )
    return share
