"""Large-neighbourhood search: improve a placement by re-solving small parts of it.

Each step frees the VMs of a few hosts, solves that sub-model exactly with CP-SAT (everything
else held where it is), and keeps the result if the whole placement scores better. Which
hosts make a neighbourhood depends on the goal (``neighbourhoods.py``); consolidation takes
turns between closing hosts, bringing moved VMs home and emptying lighter hosts instead of
heavier ones, since after the searches for hosts most of what is left to gain is moves.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace

from scheduler.model import Cluster, Goal
from scheduler.placement.evaluate import score
from scheduler.solver.bounds import active_hosts_lower_bound, moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.encoding import Encoding
from scheduler.solver.cpsat.solve import solve
from scheduler.solver.neighbourhoods import (
    Incumbent,
    Neighbourhood,
    closing,
    free_vms,
    homecoming,
    reopening,
)
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
    incumbent, best = Incumbent(cluster, start), score(cluster, goal, start)
    resisted: Counter[str] = Counter()
    leaving = set(must_leave(cluster, goal))
    waiting = {vm for vm in pending(cluster) if start.get(vm) is None}
    groups = _affinity_groups(cluster)
    usable = [h.name for h in cluster.hosts if h.accepts_vms]
    at_bounds = _Bounds(cluster)
    size = options.neighbourhood_vms

    def pick(turn: int) -> tuple[Neighbourhood, list[str]] | None:
        """Consolidation takes turns: hosts to close, moves to undo, hosts to swap; a turn
        with nothing to offer falls back to closing hosts. The hosts are drawn from the
        ordered list, never from a set, so that a seed repeats its steps."""
        first = None
        if turn == 1:
            first = homecoming(incumbent, usable, rng, size)
        elif turn == 2:
            first = reopening(incumbent, usable, rng, size)
        if first is not None and (free := free_vms(incumbent, first, movable, groups, rng, size)):
            return first, free
        chosen = closing(cluster, goal, incumbent, usable, rng, resisted, size)
        free = free_vms(incumbent, chosen, movable, groups, rng, size)
        return (chosen, free) if free else None

    iterations = 0
    while (remaining := budget.left()) > MIN_STEP_S:
        if goal is Goal.CONSOLIDATE and at_bounds(best):
            break  # hosts and moves both at their lower bounds: nothing left to gain
        iterations += 1
        picked = pick(iterations % 3 if goal is Goal.CONSOLIDATE else 0)
        if picked is None:
            break
        neighbourhood, free = picked
        scope = make_scope(
            cluster, free, neighbourhood.hosts, incumbent.placement, waiting, leaving
        )
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
            resisted.update(neighbourhood.focus)
        if options.progress is not None:
            fraction = budget.spent() / max(1e-9, budget.limit)
            options.progress(f"improving: step {iterations}, score {best}", min(1.0, fraction))
    return incumbent.placement, iterations


def at_lower_bounds(cluster: Cluster, goal: Goal, placement: Mapping[str, str | None]) -> bool:
    """Whether a consolidation has hosts and moves both at their lower bounds: no search
    can gain anything more."""
    return goal is Goal.CONSOLIDATE and _Bounds(cluster)(score(cluster, goal, placement))


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
