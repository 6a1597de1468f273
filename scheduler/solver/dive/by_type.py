"""Packing VMs that come in a few sizes, by column generation over counts per size.

Cloud VMs come in flavours: ten thousand VMs are often a few dozen distinct sizes. Over
those types the LP of Gilmore and Gomory has a row per type ("hold its count of VMs") and a
column per host content, given as how many VMs of each type it holds; pricing a column is
an integer knapsack over the types, which CP-SAT solves to optimality in milliseconds. When
pricing proves that no content is worth more than a host, the LP value is a lower bound on
the hosts; before that, the LP value divided by the best content's worth already is (Farley's
bound). The dive turns the LP into a packing: fix every whole copy of a content the LP uses,
or else the content it uses most, and solve again for the VMs still open.

This is the dive of ``lp_dive.py`` for many VMs to a host, where pricing VM by VM would
search among copies of the same sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import solve_within

MAX_TYPES = 200  # distinct VM sizes; beyond, pricing grows slow and the VM-level dive suits
PRICE = 1.0 + 1e-6  # a host costs 1; the margin keeps LP rounding from repeating a content
SCALE = 1_000_000  # duals are scaled to integers for CP-SAT's objective
MAX_DIVES = 20  # a bound the rounding keeps missing may never be met: stop trying at last


@dataclass(frozen=True)
class TypedDive:
    contents: list[np.ndarray]  # per host used, its count of VMs of each type
    lower_bound: int | None  # the hosts the first LP proves necessary, if it got that far


def types_of(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows of ``sizes``, how many VMs have each, and each VM's type."""
    kinds, inverse, counts = np.unique(sizes, axis=0, return_inverse=True, return_counts=True)
    return kinds, counts, inverse.ravel()


def typed_dive(
    kinds: np.ndarray, counts: np.ndarray, room: np.ndarray, budget: Budget
) -> TypedDive | None:
    """Host contents (counts per type) that hold ``counts`` VMs of each of ``kinds`` in hosts of
    ``room``; None if the first LP is not solved within the budget. While the best dive
    misses the LP bound and time is left, dive again with the contents found so far, each
    time drawing what to fix among the contents the LP uses most."""
    pool = _singletons(kinds, counts, room)
    best: list[np.ndarray] | None = None
    lower_bound: int | None = None
    for attempt in range(MAX_DIVES):
        draw = np.random.default_rng(attempt) if attempt else None
        contents, bound = _dive_once(kinds, counts, room, pool, budget, draw)
        if contents is None:
            break
        if attempt == 0:
            lower_bound = bound
        if best is None or len(contents) < len(best):
            best = contents
        if budget.exhausted or (lower_bound is not None and len(best) <= lower_bound):
            break
    return None if best is None else TypedDive(best, lower_bound)


def _dive_once(
    kinds: np.ndarray,
    counts: np.ndarray,
    room: np.ndarray,
    pool: _Columns,
    budget: Budget,
    draw: np.random.Generator | None,
) -> tuple[list[np.ndarray] | None, int | None]:
    """One dive: the contents of the hosts (None if the first LP did not end in time) and
    the first LP's bound. Contents priced along the way join ``pool``."""
    left = counts.copy()
    chosen: list[np.ndarray] = []
    lower_bound: int | None = None
    while left.any():
        columns = pool.cut_to(left)
        generated = _generate(kinds, left, room, columns, budget)
        for content in columns.table:
            pool.add(content)
        if generated is None:
            if not chosen:
                return None, None
            break
        values, bound = generated
        if not chosen:
            lower_bound = bound
        if not _fix(columns, values, left, chosen, draw):
            break
    if left.any():  # out of time: first fit for the rest
        chosen += _first_fit(kinds, left, room)
    return chosen, lower_bound


def lp_lower_bound(
    kinds: np.ndarray, counts: np.ndarray, room: np.ndarray, budget: Budget
) -> int | None:
    """The hosts of ``room`` the LP proves necessary for ``counts`` VMs of each of ``kinds``
    (None if the budget ends before any pricing)."""
    generated = _generate(kinds, counts, room, _singletons(kinds, counts, room), budget)
    return None if generated is None else generated[1]


def _singletons(kinds: np.ndarray, counts: np.ndarray, room: np.ndarray) -> _Columns:
    """Each type alone, as many as fit: with these the LP is always feasible."""
    columns = _Columns(len(kinds))
    for t in range(len(kinds)):
        single = np.zeros(len(kinds), dtype=np.int64)
        single[t] = most_that_fit(kinds[t], room, counts[t])
        columns.add(single)
    return columns


def most_that_fit(size: np.ndarray, room: np.ndarray, count: int) -> int:
    """How many VMs of ``size`` one host of ``room`` holds, at most ``count``."""
    asked = size > 0
    fit = int((room[asked] // size[asked]).min()) if asked.any() else count
    return max(0, min(count, fit))


class _Columns:
    def __init__(self, width: int) -> None:
        self.table: list[np.ndarray] = []
        self.seen: set[bytes] = set()
        self.width = width

    def cut_to(self, left: np.ndarray) -> _Columns:
        """The contents cut down to what is still open: the LP then counts what a
        content really holds, not VMs already placed."""
        cut = _Columns(self.width)
        for content in self.table:
            cut.add(np.minimum(content, left))
        return cut

    def add(self, content: np.ndarray) -> bool:
        key = content.tobytes()
        if key in self.seen or not content.any():
            return False
        self.seen.add(key)
        self.table.append(content)
        return True


def _solve_master(
    columns: _Columns, left: np.ndarray
) -> tuple[float, np.ndarray, np.ndarray] | None:
    """The covering LP of what is left: its value, the duals of its rows, the columns' values."""
    lp = pywraplp.Solver.CreateSolver("GLOP")
    variables = [lp.NumVar(0.0, lp.infinity(), "") for _ in columns.table]
    rows = []
    for t in range(columns.width):
        row = lp.Constraint(float(left[t]), lp.infinity())
        for variable, content in zip(variables, columns.table, strict=True):
            if content[t]:
                row.SetCoefficient(variable, float(content[t]))
        rows.append(row)
    objective = lp.Objective()
    for variable in variables:
        objective.SetCoefficient(variable, 1.0)
    objective.SetMinimization()
    if lp.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    duals = np.array([max(0.0, row.dual_value()) for row in rows])
    return objective.Value(), duals, np.array([v.solution_value() for v in variables])


def _price(
    kinds: np.ndarray, duals: np.ndarray, left: np.ndarray, room: np.ndarray, budget: Budget
) -> tuple[np.ndarray | None, float] | None:
    """The content worth most at ``duals`` and a proven ceiling on any content's worth (the
    weights are rounded up, so the ceiling holds for the true duals); None if CP-SAT found
    nothing within the budget."""
    valued = [t for t in range(len(kinds)) if duals[t] > 1e-12 and left[t] > 0]
    if not valued:
        return None, 0.0
    model = cp_model.CpModel()
    take = {
        t: model.new_int_var(0, most_that_fit(kinds[t], room, int(left[t])), f"t{t}")
        for t in valued
    }
    for r in range(len(room)):
        model.add(sum(int(kinds[t, r]) * take[t] for t in valued) <= int(room[r]))
    model.maximize(sum(math.ceil(duals[t] * SCALE) * take[t] for t in valued))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    code = solve_within(solver, model, budget)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    content = np.zeros(len(kinds), dtype=np.int64)
    for t, variable in take.items():
        content[t] = solver.value(variable)
    return content, solver.best_objective_bound / SCALE


def _generate(
    kinds: np.ndarray, left: np.ndarray, room: np.ndarray, columns: _Columns, budget: Budget
) -> tuple[np.ndarray, int | None] | None:
    """Price contents into the LP until none is worth more than a host: the values of the
    columns and the bound on hosts the LP proves (None when pricing was cut short), or None
    when the budget runs out first."""
    bound: int | None = None
    while not budget.exhausted:
        solved = _solve_master(columns, left)
        if solved is None:
            return None
        value, duals, values = solved
        priced = _price(kinds, duals, left, room, budget)
        if priced is None:
            return None
        content, ceiling = priced
        # No content is worth more than ``ceiling``: the duals scaled down by it are
        # feasible, and their value is a bound whatever the LP's columns (Farley).
        proven = math.ceil(value / max(1.0, ceiling) - 1e-6)
        bound = proven if bound is None else max(bound, proven)
        if content is None or content @ duals <= PRICE or not columns.add(content):
            return values, bound
    return None


def _fix(
    columns: _Columns,
    values: np.ndarray,
    left: np.ndarray,
    chosen: list[np.ndarray],
    draw: np.random.Generator | None,
) -> bool:
    """Fix every whole copy of a content the LP uses, or else one content among those it
    uses most (drawn at random among those used at least half as much as the most, if
    ``draw``), each cut down to what is still open; whether anything was fixed."""
    order = np.argsort(-values, kind="stable")
    whole = [(column, math.floor(values[column] + 1e-9)) for column in order]
    whole = [(column, copies) for column, copies in whole if copies >= 1]
    if not whole:
        first = order[0]
        if draw is not None:
            first = draw.choice(order[: int((values >= values[first] / 2).sum())])
        whole = [(first, 1)]
    fixed = False
    for column, copies in whole:
        for _ in range(copies):
            content = np.minimum(columns.table[column], left)
            if not content.any():
                break
            chosen.append(content)
            left -= content
            fixed = True
    return fixed


def _first_fit(kinds: np.ndarray, left: np.ndarray, room: np.ndarray) -> list[np.ndarray]:
    """First fit decreasing (by the largest share of a host) of what is still open."""
    order = np.argsort(-(kinds / room).max(axis=1), kind="stable")
    free: list[np.ndarray] = []
    contents: list[np.ndarray] = []
    for t in order:
        for _ in range(int(left[t])):
            host = next((h for h, f in enumerate(free) if (kinds[t] <= f).all()), len(free))
            if host == len(free):
                free.append(room.copy())
                contents.append(np.zeros(len(kinds), dtype=np.int64))
            free[host] -= kinds[t]
            contents[host][t] += 1
    left[:] = 0
    return contents
