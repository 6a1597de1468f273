"""Automatic consolidation and repair (pure): should the cluster change now, and how?

A hard rule the current placement breaks comes first (as in DRS): ``repair`` ends it with
the fewest moves, whatever hosts it saves, and within no budget, since a broken rule is a
fault and not an optimisation. Only a cluster that keeps its rules is consolidated.

Hysteresis keeps VMs from ping-ponging: a plan is worth proposing only if it frees at least
``min_hosts_saved`` hosts; VMs moved in the last ``vm_cooldown_s`` are held where they are;
and all automatic plans of the last hour share ``max_moves_per_hour``. The same holding is
used when a plan is re-planned after a failed migration: the VM that failed stays put. A plan
that passes through a wave where the HA reserve would not hold is never made automatically.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from scheduler.engine import Outcome, decide_plan
from scheduler.model import Cluster, Goal
from scheduler.placement.state import PlacementState
from scheduler.rules import held_in_place
from scheduler.solver.options import SearchOptions
from scheduler.solver.starts.greedy import broken_hard_rules

LEVELS = ("recommend", "approve", "automatic")


@dataclass(frozen=True)
class AutomationPolicy:
    level: str = "approve"  # recommend: plans only; approve: an operator applies; automatic
    interval_s: float = 0.0  # consolidate every this many seconds; 0: never by itself
    min_hosts_saved: int = 1
    max_moves_per_hour: int = 200
    vm_cooldown_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"automation: level must be one of {', '.join(LEVELS)}")


def rules_broken(cluster: Cluster) -> bool:
    return bool(broken_hard_rules(cluster, PlacementState(cluster, cluster.current_placement)))


def repair(cluster: Cluster, options: SearchOptions) -> Outcome | None:
    """The plan that ends every broken hard rule, or None if no complete, safe repair
    exists (the HA reserve counts as for consolidation)."""
    outcome = decide_plan(cluster, Goal.REPAIR, (), options)
    done = not broken_hard_rules(cluster, PlacementState(cluster, outcome.decision.placement))
    if not done or outcome.plan.unresolved or outcome.left_behind or outcome.reserve_breaks:
        return None
    return outcome


def consider(
    cluster: Cluster,
    policy: AutomationPolicy,
    moves_last_hour: int,
    recently_moved: Collection[str],
    options: SearchOptions,
) -> Outcome | None:
    """A consolidation worth doing now within the budget, or None."""
    budget = policy.max_moves_per_hour - moves_last_hour
    if budget <= 0:
        return None
    limit = cluster.limits.max_moves
    limits = replace(cluster.limits, max_moves=budget if limit is None else min(limit, budget))
    view = replace(held_in_place(cluster, recently_moved), limits=limits)
    outcome = decide_plan(view, Goal.CONSOLIDATE, (), options)
    saved = outcome.before.active_hosts - outcome.after.active_hosts
    if saved < policy.min_hosts_saved or outcome.plan.unresolved or outcome.left_behind:
        return None
    if outcome.reserve_breaks:  # a person may accept that; automation never does
        return None
    return outcome
