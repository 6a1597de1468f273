"""The pure decision core: ``decide_plan(snapshot, goal) -> Outcome``.

It reads no clock but the budget its caller gives it, touches no network and no libvirt,
so the same code serves a scenario file, a live cluster and a what-if sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from scheduler.ha.power import PowerAdvice, power_advice
from scheduler.ha.reserve import admit_within_reserve
from scheduler.ha.target import ReserveCost, with_reserve
from scheduler.model import Cluster, Goal
from scheduler.placement.evaluate import Indicators, broken_soft_rules, indicators
from scheduler.placement.explain import conflicting_rules
from scheduler.planning.check import stranded
from scheduler.planning.waves import Move, Plan, build_plan, starting_placement
from scheduler.rules import held_in_place
from scheduler.solver.bounds import moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.encoding import Encoding
from scheduler.solver.cpsat.solve import SolveStatus, budget_of, solve
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import Decision, decide, greedy_start
from scheduler.solver.reachable import MIGRATING_GOALS
from scheduler.solver.scope import whole_scope


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    plan: Plan
    before: Indicators
    after: Indicators
    soft_rules_broken: list[str]
    left_behind: list[str]  # VMs with no host, or still on a host they had to leave
    conflicting_rules: list[str]  # when no placement exists: hard rules that cannot all hold
    power: PowerAdvice  # empty hosts that can go off, and those the HA reserve keeps on
    refused_for_ha: dict[str, str]  # new VMs admission control kept out, and why
    reserve_breaks: list[str]  # waves after which a reserve that held today would not
    reserve_cost: ReserveCost | None = None  # consolidation under HA: hosts on, against none

    @property
    def cluster(self) -> Cluster:
        return self.decision.cluster

    def summary(self) -> dict[str, Any]:
        d, after = self.decision, self.after
        lower = d.hosts_lower_bound
        plan = self.plan
        migrations = [m for m in plan.moves if m.kind == "migrate"]
        return {
            "active_hosts_before": self.before.active_hosts,
            "active_hosts_after": after.active_hosts,
            "lower_bound": lower,
            "gap": (after.active_hosts - lower) / lower if lower else 0.0,
            "moves": after.moves,
            "moves_lower_bound": moves_lower_bound(
                self.cluster, after.active_hosts, [vm for vm, h in d.placement.items() if h]
            ),
            "parking_moves": sum(1 for m in migrations if m.parking),
            "placements": after.placements,
            "memory_moved_mib": sum(self.cluster.vm_by_name[m.vm].memory_mib for m in migrations),
            "steps": len(plan.waves),
            "solve_seconds": round(d.seconds, 3),
            "status": d.status.value if not plan.unresolved else "incomplete",
            "method": d.method,
            "unplaced_or_stranded": self.left_behind,
            "unresolved_moves": [m.vm for m in plan.unresolved],
            "soft_rules_broken": self.soft_rules_broken,
            "conflicting_rules": self.conflicting_rules,
            "hosts_to_power_off": list(self.power.power_off),
            "hosts_kept_on_for_ha": list(self.power.kept_for_reserve),
            "ha_reserve_holds": self.power.reserve_holds,
            "ha_reserve_held_before": self.power.reserve_held_before,
            "refused_for_ha": self.refused_for_ha,
            "ha_reserve_breaks": self.reserve_breaks,
            "ha_reserve_cost": _cost_summary(self.reserve_cost),
        }


def _cost_summary(cost: ReserveCost | None) -> dict[str, Any] | None:
    if cost is None:
        return None
    return {
        "reserve_free_active_hosts": cost.reserve_free_hosts,
        "hosts_powered_on": cost.powered_hosts,
        "hosts": cost.hosts,
        "reserve_aware_target": cost.reserve_aware,
    }


def decide_plan(
    cluster: Cluster,
    goal: Goal,
    evacuate: Collection[str] = (),
    options: SearchOptions | None = None,
    budget: Budget | None = None,
) -> Outcome:
    """The plan for ``goal``. The budget (by default the options' time limit, from now)
    covers the plan too: the decision leaves what ordering the moves and the figures take."""
    options = options or SearchOptions()
    budget = budget or budget_of(options.solver)
    reserve = goal is Goal.CONSOLIDATE and cluster.policy.ha.required
    kept_back = follow_up(cluster, budget) + (RESERVE_SHARE * budget.limit if reserve else 0.0)
    decision = decide(cluster, goal, evacuate, options, budget.share(budget.left() - kept_back))
    snapshot = decision.cluster
    cost = None
    if reserve:
        share = budget.share(RESERVE_SHARE * budget.limit)
        placement, cost = with_reserve(snapshot, goal, decision.placement, share)
        if cost.reserve_aware:
            decision = replace(decision, placement=placement, status=SolveStatus.FEASIBLE)
    refused: dict[str, str] = {}
    if goal is Goal.PLACE and snapshot.policy.ha.required:
        placement, refused = admit_within_reserve(snapshot, decision.placement)
        decision = replace(decision, placement=placement)
    conflicts: list[str] = []
    if decision.status is SolveStatus.INFEASIBLE:
        oracle = _feasibility_oracle(goal, options)
        conflicts = [rule.label for rule in conflicting_rules(snapshot, oracle)]
    power = cost.power if cost is not None else None
    outcome = outcome_of(decision, cluster.name, conflicts, refused, budget, power)
    outcome = replace(outcome, reserve_cost=cost)
    return _reachable_outcome(cluster, goal, evacuate, options, budget, outcome)


RETRIES = 3  # decisions again with the VMs that found no safe order held where they are
RETRY_SHARE = 0.1  # of the time limit, for all of them: the promise is kept within 10 %
MIN_RETRY_S = 0.5
RESERVE_SHARE = 0.15  # of the limit, under an HA policy, for the reserve-aware target
RESERVE_WATCH_SHARE = 0.3  # of the limit, under an HA policy, for following it wave by wave
FOLLOW_UP_S_PER_VM = 0.000_15  # ordering the moves and the figures, measured at 30,000 VMs


def follow_up(cluster: Cluster, budget: Budget) -> float:
    """What to leave, of a wall budget, for what follows the decision: ordering the moves
    into waves (following the HA reserve wave by wave, under a policy), the indicators, the
    output. Work budgets count the search alone."""
    if budget.deterministic:
        return 0.0
    ordering = FOLLOW_UP_S_PER_VM * len(cluster.vms)
    if cluster.policy.ha.required:
        ordering = max(ordering, RESERVE_WATCH_SHARE * budget.limit)
    return ordering


def _reachable_outcome(
    cluster: Cluster, goal: Goal, evacuate: Collection[str], options: SearchOptions,
    budget: Budget, outcome: Outcome,
) -> Outcome:  # fmt: skip
    """A target whose moves cannot all be ordered safely (a swap under anti-affinity with no
    room to park, a pin broken since the start) is decided again with those VMs held where
    they run: a complete plan that does less beats one that cannot be carried out. Each
    try holds more VMs, so it ends; at worst nothing moves. The tries share a tenth of the
    limit beyond it: the first decision had no reason to keep it back."""
    held: set[str] = set()
    limit = max(MIN_RETRY_S, RETRY_SHARE * budget.limit / RETRIES)
    for _ in range(RETRIES):
        if not outcome.plan.unresolved or goal not in MIGRATING_GOALS:
            return outcome
        held |= {m.vm for m in outcome.plan.unresolved}
        again_budget = Budget(limit, budget.deterministic, budget.clock)
        decision = decide(held_in_place(cluster, held), goal, evacuate, options, again_budget)
        again = outcome_of(decision, cluster.name, budget=Budget(limit, clock=budget.clock))
        if len(again.plan.unresolved) > len(outcome.plan.unresolved):
            return outcome
        outcome = again
    return outcome


def outcome_of(
    decision: Decision,
    scenario: str,
    conflicts: list[str] | None = None,
    refused_for_ha: dict[str, str] | None = None,
    budget: Budget | None = None,
    power: PowerAdvice | None = None,
) -> Outcome:
    """The plan that reaches a decided placement, and the figures around it; the budget
    bounds how long the waves follow the HA reserve. ``power``: the placement's power
    advice, when the caller has it already (it is the dearest figure under HA)."""
    snapshot = decision.cluster
    plan = build_plan(snapshot, decision.goal, decision.placement, scenario, budget)
    return Outcome(
        decision=decision,
        plan=plan,
        before=indicators(snapshot, starting_placement(snapshot)),
        after=indicators(snapshot, decision.placement),
        soft_rules_broken=broken_soft_rules(snapshot, decision.placement),
        left_behind=stranded(snapshot, decision.placement),
        conflicting_rules=conflicts or [],
        power=power or power_advice(snapshot, decision.placement),
        refused_for_ha=refused_for_ha or {},
        reserve_breaks=list(plan.reserve_breaks),
    )


def _feasibility_oracle(goal: Goal, options: SearchOptions) -> Callable[[Cluster], bool]:
    """Is there any placement for this goal? A short CP-SAT solve of the whole cluster."""
    settings = replace(options.solver, time_limit_s=min(5.0, options.solver.time_limit_s))

    def feasible(cluster: Cluster) -> bool:
        start = greedy_start(cluster, goal)
        encoding = Encoding(cluster, whole_scope(cluster, goal, start))
        return solve(encoding, goal, settings, hint=start).status is not SolveStatus.INFEASIBLE

    return feasible


def plan_to_json(outcome: Outcome) -> dict[str, Any]:
    plan = outcome.plan
    steps: list[dict[str, Any]] = []
    for number, wave in enumerate(plan.waves, start=1):
        for move in wave:
            entry: dict[str, Any] = {
                "step": number,
                "vm": move.vm,
                "from": move.source,
                "to": move.target,
            }
            if move.kind != "migrate":
                entry["kind"] = move.kind
            if move.parking:
                entry["parking"] = True
            steps.append(entry)
    return {
        "scenario": plan.scenario,
        "goal": plan.goal.value,
        "placement": dict(sorted(plan.placement.items())),
        "migrations": [s for s in steps if "kind" not in s],
        "placements": [s for s in steps if "kind" in s],
        "summary": outcome.summary(),
    }


def plan_from_json(data: Mapping[str, Any]) -> Plan:
    """Read a plan written by ``plan_to_json`` (for ``vmpack check``)."""
    by_step: dict[int, list[Move]] = {}
    for entry in [*data.get("migrations", []), *data.get("placements", [])]:
        move = Move(
            str(entry["vm"]), entry.get("from"), str(entry["to"]),
            entry.get("kind", "migrate"), bool(entry.get("parking", False)),
        )  # fmt: skip
        by_step.setdefault(int(entry["step"]), []).append(move)
    waves = tuple(tuple(by_step[s]) for s in sorted(by_step))
    return Plan(str(data.get("scenario", "")), Goal(data.get("goal", "consolidate")),
                dict(data.get("placement", {})), waves)  # fmt: skip
