"""One CP-SAT model of a consolidation over VM sizes instead of VMs.

VMs of one size that no rule names are interchangeable: what matters of a host is how many
of each size it holds. Over those counts a model of the whole cluster stays small (hosts x
sizes integers, where the VM-level model has hosts x VMs booleans): 340 hosts holding 10,000
VMs in 56 sizes make some 19,000 integers. CP-SAT, hinted with the incumbent, trades VMs
between all hosts at once, which closes hosts that neighbourhoods of a few hosts cannot: a
packing that fills memory to the last GiB needs every host to give and take. A host that
holds fewer VMs of a size than it runs now loses the difference; those are the moves.

VMs that a rule names, and VMs the incumbent leaves without a host, keep the incumbent's
answer: the model sees them as load. Hosts the incumbent leaves empty stay empty, which
keeps the model to the incumbent's hosts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from scheduler.model import VM, Cluster, Goal
from scheduler.placement.evaluate import score
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolverSettings, solve_within
from scheduler.solver.dive.by_type import MAX_TYPES, most_that_fit, types_of

# Hosts x sizes at most: at 1,020 x 56 (5,000 hosts / 30,000 VMs) the model found nothing in
# 14 s and CP-SAT's workers held 2 GiB between them.
MAX_INTEGERS = 40_000
WORKERS = 4  # at most: each holds a copy of the model, and more bought nothing here


@dataclass(frozen=True)
class _Counts:
    """The consolidation seen as counts: ``hosts`` are the incumbent's, ``kinds`` the sizes of
    the VMs free to move, and per host and size how many run there now and in the incumbent."""

    hosts: list[str]
    kinds: np.ndarray  # sizes x resources
    free: list[list[VM]]  # per size, its VMs, by name
    now: np.ndarray  # hosts x sizes
    incumbent: np.ndarray  # hosts x sizes
    room: np.ndarray  # hosts x resources, less what the VMs that stay put take
    held: np.ndarray  # hosts that VMs staying put keep active


def improve_by_size(
    cluster: Cluster,
    goal: Goal,
    incumbent: Mapping[str, str | None],
    settings: SolverSettings,
    budget: Budget,
) -> dict[str, str | None] | None:
    """A placement better than ``incumbent`` found by the model over sizes, or None: when
    the goal is not consolidation, the sizes are many or the model too large, or nothing
    better turned up within the budget."""
    if goal is not Goal.CONSOLIDATE:
        return None
    counts = _counts(cluster, incumbent)
    if counts is None:
        return None
    found = _solve(counts, settings, budget)
    if found is None:
        return None
    placement = _placement(cluster, incumbent, counts, found)
    return placement if score(cluster, goal, placement) < score(cluster, goal, incumbent) else None


def _counts(cluster: Cluster, incumbent: Mapping[str, str | None]) -> _Counts | None:
    named = {vm for rule in cluster.rules for vm in rule.vms}
    hosts = sorted({h for h in incumbent.values() if h is not None})
    row = {h: i for i, h in enumerate(hosts)}
    if not all(cluster.host_by_name[h].accepts_vms for h in hosts):
        return None  # a VM stranded where it must not stay: other stages deal with it
    resources = cluster.resources
    room = np.array(
        [[cluster.host_by_name[h].capacity.get(r, 0) for r in resources] for h in hosts]
    )
    held = np.zeros(len(hosts), dtype=bool)
    movable: list[VM] = []
    for vm in sorted(cluster.vms, key=lambda v: v.name):
        target = incumbent.get(vm.name)
        if target is None:
            continue  # left waiting by the incumbent: so it stays
        if vm.name in named:
            room[row[target]] -= [vm.demand.get(r, 0) for r in resources]
            held[row[target]] = True
        else:
            movable.append(vm)
    if not movable or (room < 0).any():
        return None
    sized = sizes_of(cluster, movable, hosts)
    if sized is None:
        return None
    kinds, kind_of, free, now = sized
    if len(kinds) * len(hosts) > MAX_INTEGERS:
        return None
    chosen = np.zeros_like(now)
    for vm, kind in zip(movable, kind_of, strict=True):
        chosen[row[str(incumbent[vm.name])], kind] += 1
    return _Counts(hosts, kinds, free, now, chosen, room, held)


def sizes_of(
    cluster: Cluster, vms: list[VM], hosts: list[str]
) -> tuple[np.ndarray, np.ndarray, list[list[VM]], np.ndarray] | None:
    """The distinct sizes (over every resource) of ``vms``: the sizes, each VM's size, each
    size's VMs in the order given, and per host of ``hosts`` how many of each size it runs
    now; None beyond ``MAX_TYPES`` sizes."""
    resources = cluster.resources
    demand = np.array([[vm.demand.get(r, 0) for r in resources] for vm in vms], dtype=np.int64)
    kinds, _, kind_of = types_of(demand.reshape(len(vms), len(resources)))
    if len(kinds) > MAX_TYPES:
        return None
    free: list[list[VM]] = [[] for _ in kinds]
    row = {h: i for i, h in enumerate(hosts)}
    now = np.zeros((len(hosts), len(kinds)), dtype=np.int64)
    for vm, kind in zip(vms, kind_of, strict=True):
        free[kind].append(vm)
        if vm.host in row:
            now[row[vm.host], kind] += 1
    return kinds, kind_of, free, now


def _solve(counts: _Counts, settings: SolverSettings, budget: Budget) -> np.ndarray | None:
    """How many VMs of each size each host holds, fewest hosts first, then fewest moves."""
    model = cp_model.CpModel()
    kinds, room = counts.kinds, counts.room
    total = [len(vms) for vms in counts.free]
    used = [model.new_bool_var(f"used{h}") for h in range(len(counts.hosts))]
    held: dict[tuple[int, int], cp_model.IntVar] = {}
    leaving = []
    for h in range(len(counts.hosts)):
        if counts.held[h]:
            model.add(used[h] == 1)
        model.add_hint(used[h], bool(counts.incumbent[h].any() or counts.held[h]))
        for t in range(len(kinds)):
            fit = most_that_fit(kinds[t], room[h], total[t])
            held[h, t] = model.new_int_var(0, fit, f"n{h},{t}")
            model.add(held[h, t] == 0).only_enforce_if(~used[h])
            model.add_hint(held[h, t], int(counts.incumbent[h, t]))
            if counts.now[h, t]:
                gone = model.new_int_var(0, int(counts.now[h, t]), f"gone{h},{t}")
                model.add(gone >= int(counts.now[h, t]) - held[h, t])
                model.add_hint(gone, max(0, int(counts.now[h, t] - counts.incumbent[h, t])))
                leaving.append(gone)
        for r in np.flatnonzero(kinds.any(axis=0)):
            load = sum(int(kinds[t, r]) * held[h, t] for t in range(len(kinds)) if kinds[t, r])
            model.add(load <= int(room[h, r]))
    for t in range(len(kinds)):
        model.add(sum(held[h, t] for h in range(len(counts.hosts))) == total[t])
    # Hosts first: one host is worth more than every VM moving.
    model.minimize((sum(total) + 1) * sum(used) + sum(leaving))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = min(WORKERS, settings.worker_count)
    solver.parameters.random_seed = settings.seed
    code = solve_within(solver, model, budget)
    if code not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return np.array(
        [[solver.value(held[h, t]) for t in range(len(kinds))] for h in range(len(counts.hosts))]
    )


def _placement(
    cluster: Cluster, incumbent: Mapping[str, str | None], counts: _Counts, found: np.ndarray
) -> dict[str, str | None]:
    return placement_of_counts(incumbent, counts.hosts, counts.free, found)


def placement_of_counts(
    incumbent: Mapping[str, str | None],
    hosts: list[str],
    free: list[list[VM]],
    found: np.ndarray,
) -> dict[str, str | None]:
    """VMs for the counts ``found`` (hosts x sizes, each size's VMs in ``free``): each host
    keeps its own VMs of a size up to its count, by name, and takes the rest of its count
    from the VMs of that size that left their hosts. VMs in no size keep ``incumbent``'s."""
    placement = dict(incumbent)
    row = {h: i for i, h in enumerate(hosts)}
    for kind, vms in enumerate(free):
        staying: dict[str, list[str]] = defaultdict(list)
        moving: list[str] = []
        for vm in vms:
            home = vm.host if vm.host in row else None
            if home is not None and len(staying[home]) < found[row[home], kind]:
                staying[home].append(vm.name)
            else:
                moving.append(vm.name)
        moving.reverse()  # taken from the end: by name
        for host, h in row.items():
            for name in staying[host]:
                placement[name] = host
            for _ in range(int(found[h, kind]) - len(staying[host])):
                placement[moving.pop()] = host
    return placement
