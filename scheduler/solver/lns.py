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

from scheduler.model import Cluster, Goal, vms_by_host
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
    incumbent, best = dict(start), score(cluster, goal, start)
    resisted: Counter[str] = Counter()
    leaving = set(must_leave(cluster, goal))
    waiting = {vm for vm in pending(cluster) if start.get(vm) is None}
    groups = _affinity_groups(cluster)
    usable = [h.name for h in cluster.hosts if h.accepts_vms]
    iterations = 0
    while (remaining := budget.left()) > MIN_STEP_S:
        if goal is Goal.CONSOLIDATE and _at_bounds(cluster, best):
            break  # hosts and moves both at their lower bounds: nothing left to gain
        iterations += 1
        hosts, focus = _neighbourhood(
            cluster, goal, incumbent, usable, rng, resisted, options.neighbourhood_vms
        )
        free = _free_vms(incumbent, hosts, movable, groups, rng, options.neighbourhood_vms)
        if not free:
            break
        scope = make_scope(cluster, free, hosts, incumbent, waiting, leaving)
        workers = options.solver.workers or min(
            2, os.cpu_count() or 1
        )  # short solves: no portfolio
        settings = replace(options.solver, workers=workers, seed=options.solver.seed + iterations)
        step = budget.share(min(MAX_STEP_S, remaining))
        result = solve(Encoding(cluster, scope), goal, settings, hint=incumbent, budget=step)
        budget.charge(max(0.0, MIN_STEP_WORK - result.work))  # trivial steps still count
        candidate = result.placement
        if candidate is not None and (new := score(cluster, goal, candidate)) < best:
            incumbent, best = dict(candidate), new
        else:
            resisted.update(focus)
        if options.progress is not None:
            fraction = budget.spent() / max(1e-9, budget.limit)
            options.progress(f"improving: step {iterations}, score {best}", min(1.0, fraction))
    return incumbent, iterations


def _at_bounds(cluster: Cluster, best: tuple[float, ...]) -> bool:
    missing, hosts, soft, moves = best[0], int(best[1]), best[2], best[3]
    return (
        missing == 0 and soft == 0
        and hosts <= active_hosts_lower_bound(cluster)
        and moves <= moves_lower_bound(cluster, hosts)
    )  # fmt: skip


def _affinity_groups(cluster: Cluster) -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    for rule in cluster.hard_rules:
        for vm in rule.wave_group:
            groups[vm] = tuple(sorted(set(groups.get(vm, ())) | set(rule.wave_group)))
    return groups


def _free_vms(
    incumbent: Mapping[str, str | None],
    hosts: list[str],
    movable: set[str],
    groups: Mapping[str, tuple[str, ...]],
    rng: random.Random,
    budget: int,
) -> list[str]:
    inside = set(hosts)
    free = [vm for vm, h in incumbent.items() if h in inside and vm in movable]
    homeless = [vm for vm, h in incumbent.items() if h is None and vm in movable]
    free += rng.sample(homeless, min(len(homeless), max(1, budget // 4)))
    # An affinity group is free only as a whole, and only if all of it is inside.
    chosen = set(free)
    return [vm for vm in free if all(m in chosen for m in groups.get(vm, (vm,)))]


def _neighbourhood(
    cluster: Cluster,
    goal: Goal,
    incumbent: Mapping[str, str | None],
    usable: list[str],
    rng: random.Random,
    resisted: Counter[str],
    budget: int,
) -> tuple[list[str], list[str]]:
    """(hosts of the sub-model, the hosts it is meant to relieve)."""
    residents = vms_by_host(incumbent)
    active = [h for h in usable if residents.get(h)]
    free_share = _free_share(cluster, incumbent, usable)
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


def _weighted_order(pool: list[str], weights: list[float], rng: random.Random) -> list[str]:
    if not pool:
        return []
    keys = np.array([rng.random() ** (1.0 / max(w, 0.01)) for w in weights])  # weighted order
    return [pool[i] for i in np.argsort(-keys)]


def _free_share(
    cluster: Cluster, incumbent: Mapping[str, str | None], usable: list[str]
) -> dict[str, float]:
    """Per host, the smallest free fraction over its resources (room for one more VM)."""
    loads: dict[str, dict[str, int]] = {h: {} for h in usable}
    for vm, host in incumbent.items():
        if host in loads:
            for r, d in cluster.vm_by_name[vm].demand.items():
                loads[host][r] = loads[host].get(r, 0) + d
    share = {}
    for host in usable:
        capacity = cluster.host_by_name[host].capacity
        share[host] = min(
            (1 - loads[host].get(r, 0) / c for r, c in capacity.items() if c > 0), default=0.0
        )
    return share
