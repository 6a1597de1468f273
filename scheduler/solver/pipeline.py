"""From a snapshot and a goal to a target placement.

    greedy start  ->  an LP dive over host contents              (a packing from scratch)
                  ->  closing hosts by tabu search               (consolidation)
                  ->  one CP-SAT model of the whole cluster      (small enough)
                  ->  large-neighbourhood search of sub-models   (otherwise)

The greedy start is always a valid placement, so a time limit never leaves us empty-handed;
the solver improves it and proves how far from the best it can be.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from scheduler.model import Cluster, Goal, HostState
from scheduler.placement.evaluate import indicators, score
from scheduler.placement.packer import Packer, place_pending
from scheduler.solver import lns
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.closing.on_cluster import STEPS_PER_SECOND, close_hosts_of
from scheduler.solver.closing.packing import Budget
from scheduler.solver.cpsat.encoding import Encoding, Scope
from scheduler.solver.cpsat.solve import SolveStatus, solve
from scheduler.solver.dive.lp_dive import dive_packing, packs_from_scratch
from scheduler.solver.options import SearchOptions
from scheduler.solver.reachable import reachable
from scheduler.solver.scope import must_leave, pending, whole_scope
from scheduler.solver.starts.greedy import (
    empty_hosts,
    fewest_vms_first,
    first_fit_decreasing,
    relieve_overloads,
    repair_rules,
)
from scheduler.solver.starts.keep_set import keep_set_start

LARGE_PACKING_PAIRS = 15_000
DIVE_SHARE = 0.5  # of the time limit, at most, for the LP dive of a packing from scratch
MIN_MODEL_S = 0.5  # the model always gets a moment, even after a slow start
REPACK_MAX_VMS = 3_000  # larger clusters: packing from scratch costs seconds and moves everything


@dataclass(frozen=True)
class Decision:
    goal: Goal
    cluster: Cluster  # the snapshot decided on (evacuated hosts marked for maintenance)
    placement: Mapping[str, str | None]
    status: SolveStatus
    hosts_lower_bound: int
    seconds: float
    method: str  # "full", "lns" or "dive" (a packing the LP bound proves optimal)
    iterations: int = 0


def for_goal(cluster: Cluster, goal: Goal, evacuate: Collection[str] = ()) -> Cluster:
    """The snapshot as the goal sees it: hosts to evacuate are put into maintenance."""
    if not evacuate:
        return cluster
    hosts = [
        replace(h, state=HostState.MAINTENANCE) if h.name in evacuate and h.accepts_vms else h
        for h in cluster.hosts
    ]
    return cluster.replace_hosts(hosts)


def decide(
    cluster: Cluster,
    goal: Goal,
    evacuate: Collection[str] = (),
    options: SearchOptions | None = None,
) -> Decision:
    options = options or SearchOptions()
    started = time.monotonic()
    cluster = reachable(for_goal(cluster, goal, evacuate), goal)
    settings = options.solver
    start = greedy_start(cluster, goal, settings.time_limit_s / 2, settings.deterministic)
    lp_bound = 0
    # The dive watches the clock, so repeatable runs go without it.
    if goal is Goal.CONSOLIDATE and packs_from_scratch(cluster) and not settings.deterministic:
        _report(options, "packing by an LP dive", 0.0)
        dived, lp = dive_packing(cluster, start, started + DIVE_SHARE * settings.time_limit_s)
        if dived is not None and score(cluster, goal, dived) < score(cluster, goal, start):
            start = dived
        if all(host is not None for host in start.values()):
            lp_bound = lp or 0  # a bound for placing every VM
    closing = _closing_time(cluster, goal, settings.time_limit_s)
    if closing:
        _report(options, "closing hosts", 0.0)
        steps = int(STEPS_PER_SECOND * closing) if settings.deterministic else None
        budget = Budget(started + closing, steps)
        start = _closed_hosts(cluster, goal, start, budget, settings.seed, lp_bound)
    if lp_bound and _at_bound(cluster, goal, start, lp_bound):
        took = time.monotonic() - started
        return Decision(goal, cluster, start, SolveStatus.OPTIMAL, lp_bound, took, "dive")
    scope = whole_scope(cluster, goal, start)
    pairs = sum(len(c) for c in scope.candidates.values())
    if pairs <= options.full_model_max_pairs:
        _report(options, f"solving one model: {len(scope.free)} VMs, {pairs} choices", 0.0)
        left = started + settings.time_limit_s - time.monotonic()
        # Repeatable runs give the model its share whatever the clock says.
        share = settings.time_limit_s - closing
        limit = share if settings.deterministic else max(MIN_MODEL_S, left)
        result = solve(
            Encoding(cluster, scope), goal, replace(settings, time_limit_s=limit), hint=start
        )
        placement = result.placement if result.placement is not None else start
        bound = max(_placed_bound(cluster, placement), lp_bound)
        proven = result.tier_bounds
        if goal is Goal.CONSOLIDATE and "hosts" in proven and proven.get("unplaced", 0) == 0:
            bound = max(bound, _hosts_bound(cluster, scope, result.tier_bounds["hosts"]))
        status = result.status
        if status is SolveStatus.UNKNOWN:
            status = SolveStatus.FEASIBLE  # the greedy start stands
        if status is SolveStatus.INFEASIBLE:
            placement = start
        return Decision(goal, cluster, placement, status, bound, time.monotonic() - started, "full")
    deadline = started + options.solver.time_limit_s
    placement, iterations = lns.improve(
        cluster, goal, start, movable=set(scope.free), deadline=deadline, options=options
    )
    bound = max(_placed_bound(cluster, placement), lp_bound)
    status = (
        SolveStatus.OPTIMAL if _at_bound(cluster, goal, placement, bound) else SolveStatus.FEASIBLE
    )
    return Decision(
        goal, cluster, placement, status, bound, time.monotonic() - started, "lns", iterations
    )


def _placed_bound(cluster: Cluster, placement: Mapping[str, str | None]) -> int:
    """The bound holds for the VMs that were placed: some may have no room at all."""
    return active_hosts_lower_bound(cluster, [vm for vm, h in placement.items() if h is not None])


def _report(options: SearchOptions, text: str, fraction: float) -> None:
    if options.progress is not None:
        options.progress(text, fraction)


def _hosts_bound(cluster: Cluster, scope: Scope, model_bound: int) -> int:
    # The model counts only hosts whose activity it decides; others are active regardless.
    return model_bound + sum(
        1 for h in scope.hosts if any(
            vm not in scope.free and host == h for vm, host in scope.incumbent.items()
        )
    )  # fmt: skip


def _at_bound(
    cluster: Cluster, goal: Goal, placement: Mapping[str, str | None], bound: int
) -> bool:
    if goal is not Goal.CONSOLIDATE:
        return False
    return score(cluster, goal, placement)[:2] == (0, bound)


def greedy_start(
    cluster: Cluster, goal: Goal, budget_s: float = 10.0, deterministic: bool = False
) -> dict[str, str | None]:
    """The best of several quick placements; the keep-set start may use ``budget_s``."""
    waiting = set(pending(cluster))
    placement = {
        vm: (None if vm in waiting else host) for vm, host in cluster.current_placement.items()
    }
    packer = Packer(cluster, placement)
    leaving = must_leave(cluster, goal)
    for vm in leaving:
        source = packer.state.host_of(vm)
        packer.unplace(vm)
        if place_pending(packer, [vm]) and source is not None:
            packer.move(vm, source)  # nowhere to go: it stays, and is reported
    for vm, source in relieve_overloads(packer):
        if place_pending(packer, [vm]):
            packer.move(vm, source)  # no room anywhere: it stays rather than stop
    if goal is not Goal.PLACE:  # every other goal repairs first, as the model must
        repair_rules(packer)
    place_pending(packer, waiting)
    if goal is not Goal.CONSOLIDATE:
        return packer.state.placement()
    budget = cluster.limits.max_moves
    if budget is not None:
        budget -= indicators(cluster, packer.state.placement()).moves
    empty_hosts(packer, fewest_vms_first(packer), fit="best", max_moves=budget)
    starts = [packer.state.placement()]
    by_keep_set = keep_set_start(cluster, placement, min(10.0, budget_s), None, deterministic)
    if by_keep_set is not None:
        starts.append(by_keep_set)
    if len(cluster.vms) <= REPACK_MAX_VMS:  # a packing from scratch, when it saves hosts
        starts += [
            first_fit_decreasing(cluster, fit, measure)
            for fit in ("first", "best")
            for measure in ("max", "sum", "l2")
        ]
    # The incremental start always stands (it keeps the budget); the others must qualify.
    starts = starts[:1] + [
        p for p in starts[1:] if _within_budget(cluster, p) and _keeps_running(cluster, p)
    ]
    return min(starts, key=lambda p: score(cluster, goal, p))


def _closing_time(cluster: Cluster, goal: Goal, time_limit_s: float) -> float:
    """Consolidation spends half the time closing hosts, or most of it on a large pure
    packing: nothing runs yet whose moves the model would weigh, and a model that large
    rarely packs tighter. Other goals close no host."""
    if goal is not Goal.CONSOLIDATE:
        return 0.0
    nothing_runs = len(pending(cluster)) == len(cluster.vms)
    large = len(cluster.vms) * len(cluster.hosts) > LARGE_PACKING_PAIRS
    return time_limit_s * (0.8 if nothing_runs and large else 0.5)


def _closed_hosts(
    cluster: Cluster,
    goal: Goal,
    start: dict[str, str | None],
    budget: Budget,
    seed: int,
    known_bound: int,
) -> dict[str, str | None]:
    """The start, or a packing on fewer hosts that stays within the move budget."""
    tighter = close_hosts_of(cluster, start, budget, seed, known_bound)
    if _within_budget(cluster, tighter) and score(cluster, goal, tighter) < score(
        cluster, goal, start
    ):
        return tighter
    return start


def _keeps_running(cluster: Cluster, placement: Mapping[str, str | None]) -> bool:
    """A repacking from scratch must not leave a running VM without a host (a VM of a host
    that is down is not running)."""
    down = {h.name for h in cluster.hosts if h.state is HostState.DOWN}
    return all(
        placement.get(v.name) is not None
        for v in cluster.vms
        if v.host is not None and v.host not in down
    )


def _within_budget(cluster: Cluster, placement: Mapping[str, str | None]) -> bool:
    budget = cluster.limits.max_moves
    return budget is None or indicators(cluster, placement).moves <= budget
