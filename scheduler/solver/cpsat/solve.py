"""The one place that runs CP-SAT and turns its status into a typed result.

FEASIBLE is a usable answer (time ran out before the proof), UNKNOWN is not "infeasible"
(time ran out before any solution), and only INFEASIBLE proves there is no placement.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from ortools.sat.python import cp_model

from scheduler.model import Goal
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.encoding import Encoding
from scheduler.solver.cpsat.objective import Objective, add_objective

MIN_SOLVE_S = 0.05  # CP-SAT is always given a moment: it may find a hinted solution


class SolveStatus(enum.StrEnum):
    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"
    INVALID = "invalid"

    @property
    def has_solution(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)


_STATUS = {
    cp_model.OPTIMAL: SolveStatus.OPTIMAL,
    cp_model.FEASIBLE: SolveStatus.FEASIBLE,
    cp_model.INFEASIBLE: SolveStatus.INFEASIBLE,
    cp_model.UNKNOWN: SolveStatus.UNKNOWN,
    cp_model.MODEL_INVALID: SolveStatus.INVALID,
}


@dataclass(frozen=True)
class SolverSettings:
    time_limit_s: float = 30.0
    workers: int = 0  # 0: eight, CP-SAT's full portfolio of strategies, whatever the cores
    seed: int = 0
    # Stop on CP-SAT's deterministic work clock instead of the wall clock (with one worker):
    # the same input then gives the same answer on any machine, at any load. Sweeps use it.
    deterministic: bool = False

    @property
    def worker_count(self) -> int:
        return self.workers or 8


@dataclass(frozen=True)
class SolveResult:
    status: SolveStatus
    placement: Mapping[str, str | None] | None
    objective: float | None
    bound: float | None
    seconds: float
    tier_bounds: Mapping[str, int]  # proven lower bound of each tier that leads the objective
    work: float = 0.0  # CP-SAT's deterministic time spent


def solve(
    enc: Encoding,
    goal: Goal,
    settings: SolverSettings,
    hint: Mapping[str, str | None] | None = None,
    budget: Budget | None = None,
) -> SolveResult:
    """The model solved within ``budget`` (by default, the settings' own time limit)."""
    budget = budget or budget_of(settings)
    objective = add_objective(enc, goal)
    if hint is not None:
        enc.add_hint(hint)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = settings.worker_count
    solver.parameters.random_seed = settings.seed
    code = solve_within(solver, enc.model, budget)
    status = _STATUS.get(code, SolveStatus.UNKNOWN)
    if not status.has_solution:
        return SolveResult(
            status, None, None, None, solver.wall_time, {}, solver.deterministic_time
        )
    placement = enc.placement_from(solver.boolean_value)
    return SolveResult(
        status,
        placement,
        solver.objective_value,
        solver.best_objective_bound,
        solver.wall_time,
        _tier_bounds(objective, solver.best_objective_bound),
        solver.deterministic_time,
    )


def budget_of(settings: SolverSettings) -> Budget:
    """The budget a caller that has only settings gives: their time limit, from now."""
    return Budget(settings.time_limit_s, settings.deterministic)


def solve_within(
    solver: cp_model.CpSolver, model: cp_model.CpModel, budget: Budget
) -> cp_model.CpSolverStatus:
    """CP-SAT stopped by the budget: wall seconds, or deterministic work on one worker (the
    only way its answer repeats). Its work is charged to the budget."""
    limit = max(MIN_SOLVE_S, budget.left())
    if budget.deterministic:
        solver.parameters.max_deterministic_time = limit
        solver.parameters.max_time_in_seconds = 60 * max(1.0, limit)  # a safety net
        solver.parameters.num_workers = 1
    else:
        solver.parameters.max_time_in_seconds = limit
    code = solver.solve(model)
    budget.charge(solver.deterministic_time)
    return code


def _tier_bounds(objective: Objective, bound: float) -> dict[str, int]:
    """Proven bounds read off the combined objective bound, tier by tier from the top.

    With tier values t_i and weights w_i, bound <= sum w_i t_i. The first tier's bound is
    ceil((bound - upper(rest)) / w_0); it is only exact for the tiers above the first one
    whose bound is not reached, so we stop there.
    """
    bounds: dict[str, int] = {}
    remaining = bound
    for i, (tier, weight) in enumerate(zip(objective.tiers, objective.weights, strict=True)):
        below = sum(
            t.upper * w
            for t, w in zip(objective.tiers[i + 1 :], objective.weights[i + 1 :], strict=True)
        )
        value = max(0, int(-(-(remaining - below) // weight)))
        bounds[tier.name] = value
        remaining -= value * weight
        if remaining < 0:
            break
    return bounds
