"""An exact repack of a few hosts with CP-SAT, for the host-closing search when its moves
stall: can the VMs waiting in the pool, together with every VM now on ``hosts``, all be
placed on ``hosts``? The tabu search moves one or two VMs at a time; this looks at a whole
group of hosts at once, which is what a tight packing needs near the optimum.

Time is counted in CP-SAT's deterministic units, so that a run with a step budget gives the
same answer every time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ortools.sat.python import cp_model

from scheduler.solver.closing.packing import Packing


def repack(
    packing: Packing,
    vms: Sequence[int],
    hosts: Sequence[int],
    hint: dict[int, int],
    work_limit: float,
    seed: int = 0,
) -> dict[int, int] | None:
    """A host among ``hosts`` for each of ``vms``, within each host's room; None if there
    is none or the solver could not tell within ``work_limit`` (deterministic seconds)."""
    model = cp_model.CpModel()
    placed: dict[tuple[int, int], cp_model.IntVar] = {}
    for vm in vms:
        choices = [h for h in hosts if packing.allowed[vm, h]]
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
    solver.parameters.max_deterministic_time = work_limit
    if solver.solve(model) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return {vm: host for (vm, host), var in placed.items() if solver.value(var)}
