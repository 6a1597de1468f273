"""An exact repack of a few hosts with CP-SAT, for the host-closing search when its moves
stall: can the VMs waiting in the pool, together with every VM now on ``hosts``, all be
placed on ``hosts``? The tabu search moves one or two VMs at a time; this looks at a whole
group of hosts at once, which is what a tight packing needs near the optimum.

It runs on a share of the search's budget: under a deterministic budget CP-SAT counts its
deterministic work, so that the search gives the same answer every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ortools.sat.python import cp_model

from scheduler.solver.budget import Budget
from scheduler.solver.closing.packing import Packing
from scheduler.solver.cpsat.solve import solve_within


def repack(
    packing: Packing,
    vms: Sequence[int],
    hosts: Sequence[int],
    hint: dict[int, int],
    budget: Budget,
    seed: int = 0,
) -> dict[int, int] | None:
    """A host among ``hosts`` for each of ``vms``, within each host's room; None if there
    is none or the solver could not tell within the budget."""
    model = cp_model.CpModel()
    placed: dict[tuple[int, int], cp_model.IntVar] = {}
    for vm in vms:
        choices = [h for h in hosts if packing.allowed[packing.kind[vm], h]]
        if not choices:
            return None
        for host in choices:
            placed[vm, host] = model.new_bool_var(f"vm{vm}_on_{host}")
            if hint.get(vm) == host:
                model.add_hint(placed[vm, host], 1)
        model.add_exactly_one(placed[vm, h] for h in choices)
    sizes = packing.sizes
    for host in hosts:
        here = [vm for vm in vms if (vm, host) in placed]
        for r in np.flatnonzero(sizes[here].sum(axis=0) > packing.room[host]):
            model.add(
                sum(int(sizes[vm, r]) * placed[vm, host] for vm in here)
                <= int(packing.room[host, r])
            )
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = seed
    if solve_within(solver, model, budget) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return {vm: host for (vm, host), var in placed.items() if solver.value(var)}
