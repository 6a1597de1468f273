"""From a snapshot and a goal to a target placement, in one visible sequence of stages:

    starts   the best of several quick placements (always valid: a time limit never leaves
             us empty-handed)
    dive     an LP dive over host contents                  (a packing from scratch; over VM
             sizes, before the starts, when VMs are many to a host in few sizes)
    closing  closing hosts by tabu search                   (consolidation)
    model    one CP-SAT model of the whole cluster          (small enough)
    or else
    sizes    one CP-SAT model over VM sizes                 (consolidation, few sizes)
    contents fewer moves from the LP over host contents     (consolidation, few sizes)
    lns      large-neighbourhood search of sub-models

Every stage spends a share of one budget, created by the caller: the pipeline reads no
clock of its own, so a wall budget is kept and a deterministic one repeats.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from scheduler.model import Cluster, Goal, HostState
from scheduler.placement.evaluate import indicators, score
from scheduler.placement.packer import Packer, place_pending
from scheduler.solver import lns
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.closing.on_cluster import close_hosts_of
from scheduler.solver.contents import fewer_moves_target
from scheduler.solver.cpsat.by_size import improve_by_size
from scheduler.solver.cpsat.encoding import Encoding, Scope
from scheduler.solver.cpsat.solve import SolveStatus, budget_of, solve
from scheduler.solver.dive.lp_dive import (
    dive_by_size_packing,
    dive_packing,
    packs_from_scratch,
    sized_packing,
)
from scheduler.solver.options import SearchOptions
from scheduler.solver.reachable import reachable
from scheduler.solver.scope import must_leave, pending, whole_members, whole_scope
from scheduler.solver.starts.greedy import (
    empty_hosts,
    fewest_vms_first,
    first_fit_decreasing,
    relieve_overloads,
    repair_rules,
    send_home,
)
from scheduler.solver.starts.keep_set import keep_set_start

LARGE_PACKING_PAIRS = 15_000
PAIRS_WORTH_COUNTING = 10  # times the largest whole model: rules may cut pairs that much
STARTS_SHARE = 0.2  # of the budget, at most, for the keep-set start (CP-SAT picks hosts)
KEEP_SET_MAX_S = 10.0
# Beyond this many hosts the closing search is left out: at 10,000 hosts / 100,000 VMs two of
# its steps took 9.9 s, against a share of 5.5 s.
CLOSING_MAX_HOSTS = 5_000
DIVE_SHARE = 0.5  # of the budget, at most, for the LP dive of a packing from scratch
SIZES_SHARE = 0.5  # of what is left, for the model over VM sizes
CONTENTS_SHARE = 0.7  # of what is left, for fewer moves over host contents; the rest for the LNS
FEWER_MOVES_S_PER_VM = 0.000_05  # undoing moves: 1.5 s at 30,000 VMs
REPACK_MAX_VMS = 3_000  # larger clusters: packing from scratch costs seconds and moves everything


@dataclass(frozen=True)
class Decision:
    goal: Goal
    cluster: Cluster  # the snapshot decided on (evacuated hosts marked for maintenance)
    placement: Mapping[str, str | None]
    status: SolveStatus
    hosts_lower_bound: int
    seconds: float  # of the budget spent: wall seconds, or work units if deterministic
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
    budget: Budget | None = None,
) -> Decision:
    """The target placement for ``goal``, within ``budget`` (by default the options' time
    limit, from now)."""
    options = options or SearchOptions()
    budget = budget or budget_of(options.solver)
    cluster = reachable(for_goal(cluster, goal, evacuate), goal)
    stages = options.stages
    dive = goal is Goal.CONSOLIDATE and "dive" in stages and budget.watches_clock()
    dived: dict[str, str | None] | None = None
    lp: int | None = None
    from_scratch = dive and packs_from_scratch(cluster)
    per_size = sized_packing(cluster, budget.left()) if from_scratch else None
    if per_size is not None:  # before any start: a packing it proves needs nothing more
        _report(options, budget, "packing by an LP dive over VM sizes")
        share = budget.share(DIVE_SHARE * budget.limit)
        dived, lp = dive_by_size_packing(cluster, per_size, share)
        if dived is not None and lp is not None and _at_bound(cluster, goal, dived, lp):
            return Decision(goal, cluster, dived, SolveStatus.OPTIMAL, lp, budget.spent(), "dive")
    start = greedy_start(cluster, goal, budget if "keep-set" in stages else None)
    if from_scratch and per_size is None:
        _report(options, budget, "packing by an LP dive")
        dived, lp = dive_packing(cluster, start, budget.share(DIVE_SHARE * budget.limit))
    if dived is not None and score(cluster, goal, dived) < score(cluster, goal, start):
        start = dived
    lp_bound = 0
    if lp and all(host is not None for host in start.values()):
        lp_bound = lp  # a bound for placing every VM
    closing = _closing_share(cluster, goal) if "closing" in stages else 0.0
    if closing:
        _report(options, budget, "closing hosts")
        start = _closed_hosts(
            cluster, goal, start, budget.share(closing * budget.left()), options.solver.seed,
            lp_bound,
        )  # fmt: skip
        start = _fewer_moves(cluster, goal, start)
    if lp_bound and _at_bound(cluster, goal, start, lp_bound):
        return Decision(goal, cluster, start, SolveStatus.OPTIMAL, lp_bound, budget.spent(), "dive")
    free, hosts = whole_members(cluster, goal, start)
    # Pairs are counted only where they may be few enough: never a model of every pair.
    small = len(free) * len(hosts) <= PAIRS_WORTH_COUNTING * options.full_model_max_pairs
    scope = whole_scope(cluster, goal, start) if small else None
    pairs = sum(len(c) for c in scope.candidates.values()) if scope is not None else -1
    if scope is not None and pairs <= options.full_model_max_pairs and "model" in stages:
        _report(options, budget, f"solving one model: {len(scope.free)} VMs, {pairs} choices")
        return _whole_model(cluster, goal, scope, start, lp_bound, options, budget)
    placement, iterations = start, 0
    if "sizes" in stages and not lns.at_lower_bounds(cluster, goal, start):
        _report(options, budget, "solving one model over VM sizes")
        sized = improve_by_size(
            cluster, goal, start, options.solver, budget.share(SIZES_SHARE * budget.left())
        )
        placement = sized if sized is not None else start
    if "contents" in stages and budget.watches_clock():  # it skips moves at their bound itself
        _report(options, budget, "fewer moves from the LP over host contents")
        share = budget.share(CONTENTS_SHARE * budget.left())
        fewer = fewer_moves_target(cluster, goal, placement, options.solver, share)
        placement = fewer if fewer is not None else placement
    if "lns" in stages:
        searching = budget.share(budget.left() - _fewer_moves_time(cluster, goal, budget))
        placement, iterations = lns.improve(cluster, goal, placement, set(free), searching, options)
    placement = _fewer_moves(cluster, goal, placement)
    bound = max(_placed_bound(cluster, placement), lp_bound)
    status = (
        SolveStatus.OPTIMAL if _at_bound(cluster, goal, placement, bound) else SolveStatus.FEASIBLE
    )
    return Decision(goal, cluster, placement, status, bound, budget.spent(), "lns", iterations)


def _whole_model(
    cluster: Cluster, goal: Goal, scope: Scope, start: dict[str, str | None], lp_bound: int,
    options: SearchOptions, budget: Budget,
) -> Decision:  # fmt: skip
    result = solve(Encoding(cluster, scope), goal, options.solver, hint=start, budget=budget)
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
    return Decision(goal, cluster, placement, status, bound, budget.spent(), "full")


def _fewer_moves_time(cluster: Cluster, goal: Goal, budget: Budget) -> float:
    """What undoing moves takes, left out of the search before it (wall budgets only)."""
    if goal is not Goal.CONSOLIDATE or budget.deterministic:
        return 0.0
    return FEWER_MOVES_S_PER_VM * len(cluster.vms)


def _fewer_moves(
    cluster: Cluster, goal: Goal, placement: dict[str, str | None]
) -> dict[str, str | None]:
    """The target with its moves that buy nothing undone, if that scores better."""
    if goal is not Goal.CONSOLIDATE:
        return placement
    homed = send_home(cluster, placement)
    return homed if score(cluster, goal, homed) < score(cluster, goal, placement) else placement


def _placed_bound(cluster: Cluster, placement: Mapping[str, str | None]) -> int:
    """The bound holds for the VMs that were placed: some may have no room at all."""
    return active_hosts_lower_bound(cluster, [vm for vm, h in placement.items() if h is not None])


def _report(options: SearchOptions, budget: Budget, text: str) -> None:
    if options.progress is not None:
        options.progress(text, min(1.0, budget.spent() / max(budget.limit, 1e-9)))


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
    cluster: Cluster, goal: Goal, budget: Budget | None = None
) -> dict[str, str | None]:
    """The best of several quick placements; the keep-set start (CP-SAT choosing the hosts
    to keep) runs when there is a budget, on a share of it taken when it starts."""
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
    moves_left = cluster.limits.max_moves
    if moves_left is not None:
        moves_left -= indicators(cluster, packer.state.placement()).moves
    empty_hosts(packer, fewest_vms_first(packer), fit="best", max_moves=moves_left)
    starts = [packer.state.placement()]
    by_keep_set = None
    if budget is not None:
        share = budget.share(min(KEEP_SET_MAX_S, STARTS_SHARE * budget.limit))
        by_keep_set = keep_set_start(cluster, placement, share)
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


def _closing_share(cluster: Cluster, goal: Goal) -> float:
    """Consolidation spends half of what is left closing hosts, or most of it on a large
    pure packing: nothing runs yet whose moves the model would weigh, and a model that large
    rarely packs tighter. Other goals close no host, and neither does a cluster so large
    that one step of the search costs more than its share (its steps weigh every host)."""
    if goal is not Goal.CONSOLIDATE or len(cluster.hosts) > CLOSING_MAX_HOSTS:
        return 0.0
    nothing_runs = len(pending(cluster)) == len(cluster.vms)
    large = len(cluster.vms) * len(cluster.hosts) > LARGE_PACKING_PAIRS
    return 0.8 if nothing_runs and large else 0.5


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
