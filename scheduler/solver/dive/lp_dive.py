"""Packing from scratch by column generation and an LP dive.

For a pure packing (VMs waiting for identical hosts, no rules between them) the LP of
Gilmore and Gomory, "cover every VM with host contents that fit, using as few hosts as
possible", is very tight: its value rounded up is almost always the fewest hosts there are.
Its columns (host contents) come from the start packing and from pricing (``pricing.py``).

The dive turns the LP into a packing: solve it, fix the content it uses most (and those it
uses nearly whole), set aside the contents that share a VM with a fixed one, generate
columns again for the VMs still open, and repeat until every VM has a host. The LP of the
first round, when pricing ran to its end, is also a lower bound on the hosts needed, far
stronger than the volume bound when VMs are large.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp

from scheduler.model import Cluster
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.closing.steps import most_per_host
from scheduler.solver.dive.by_type import MAX_TYPES, lp_lower_bound, typed_dive, types_of
from scheduler.solver.dive.pricing import PRICE, valuable_sets

# The dive's work grows about with the square of the VMs (some 4 s for 500 here); when the
# time given cannot cover it, the dive over VM sizes (``by_type.py``) runs instead, whose
# work grows with the sizes, not the VMs; with too many sizes, the closing search packs.
VMS_PER_ROOT_SECOND = 250
# With many VMs to a host, pricing VM by VM grows costly (it searches among copies of the
# same sizes): the dive over sizes takes such sets.
MAX_VMS_PER_HOST = 5.0
COLUMNS_PER_ROUND = 300  # columns priced into the LP at a time
PRICING_NODES = 1_000_000  # branch-and-bound nodes per pricing
LP_COLUMNS_PER_VM = 2  # each round's LP keeps this many columns per open VM, the cheapest
# A content the LP uses this much is fixed along with the one it uses most: first a quick
# dive, then, if that one missed the bound, a careful one; then quick ones, drawn at random.
FIX_FROM = (0.7, 0.999)
ROOT_SHARE = 0.5  # of the dive's time, at most, for its first LP
MAX_DIVES = 20  # a bound that pricing left unproven may never be met: stop trying at last


@dataclass(frozen=True)
class Dive:
    contents: list[np.ndarray]  # the VMs (row numbers) of each host used
    lower_bound: int | None  # the first LP rounded up, when its pricing was complete


class _Columns:
    """Every content met so far, as rows of VM numbers padded with -1, and which of them
    are still usable (none of their VMs placed by the dive yet)."""

    def __init__(self, count: int, width: int) -> None:
        self.table = np.full((1024, width), -1, dtype=np.int64)
        self.usable = np.zeros(1024, dtype=bool)
        self.size = 0
        self.index: dict[bytes, int] = {}
        self.columns_of: list[list[int]] = [[] for _ in range(count)]

    def add(self, content: np.ndarray) -> int:
        content = np.sort(content)
        key = content.tobytes()
        if key in self.index:
            return self.index[key]
        if self.size == len(self.table):
            self.table = np.vstack([self.table, np.full_like(self.table, -1)])
            self.usable = np.concatenate([self.usable, np.zeros_like(self.usable)])
        column = self.index[key] = self.size
        self.table[column, : len(content)] = content
        self.usable[column] = True
        for vm in content:
            self.columns_of[vm].append(column)
        self.size += 1
        return column

    def content(self, column: int) -> np.ndarray:
        row: np.ndarray = self.table[column]
        return row[row >= 0]

    def reduced_costs(self, duals: np.ndarray) -> np.ndarray:
        padded = np.append(duals, 0.0)  # -1 pads a row, and reads this zero
        costs: np.ndarray = 1.0 - padded[self.table[: self.size]].sum(axis=1)
        return costs

    def set_aside(self, vm: int) -> None:
        self.usable[self.columns_of[vm]] = False


class _Master:
    """The covering LP of the VMs still open: each covered at least once, by as few
    contents as possible. Built afresh for each round of the dive, with the columns of
    least reduced cost: a small LP solves fast, and pricing brings back what it misses."""

    def __init__(self, open_vms: np.ndarray, count: int) -> None:
        self.lp = pywraplp.Solver.CreateSolver("GLOP")
        self.rows = {int(vm): self.lp.Constraint(1, self.lp.infinity()) for vm in open_vms}
        self.objective = self.lp.Objective()
        self.objective.SetMinimization()
        self.count = count
        self.columns: list[int] = []
        self.variables: list[pywraplp.Variable] = []
        self.present: set[int] = set()

    def add(self, column: int, content: np.ndarray) -> bool:
        if column in self.present:
            return False
        self.present.add(column)
        variable = self.lp.NumVar(0.0, self.lp.infinity(), "")
        for vm in content:
            self.rows[int(vm)].SetCoefficient(variable, 1.0)
        self.objective.SetCoefficient(variable, 1.0)
        self.columns.append(column)
        self.variables.append(variable)
        return True

    def solve(self) -> tuple[float, np.ndarray] | None:
        """The LP value and the duals of the rows (zero for VMs already placed), or None
        should the LP solver fail (the LP always has an optimum: singletons cover all)."""
        if self.lp.Solve() != pywraplp.Solver.OPTIMAL:
            return None
        duals = np.zeros(self.count)
        for vm, row in self.rows.items():
            duals[vm] = max(0.0, row.dual_value())
        return self.objective.Value(), duals

    def values(self) -> np.ndarray:
        return np.array([v.solution_value() for v in self.variables])


def dive(
    sizes: np.ndarray, room: np.ndarray, seeds: list[np.ndarray], budget: Budget
) -> Dive | None:
    """A packing of the VMs (rows of ``sizes``) in hosts of ``room``; what is still
    open when the budget runs out is packed by first fit. ``seeds`` are contents known to fit, such
    as the hosts of a start packing. While the best dive ends above the LP bound and time
    is left, dive again with the columns found so far: first fixing only what the LP uses
    whole, then with the first content of each round drawn among those the LP uses most.
    None if the first LP takes more than ``ROOT_SHARE`` of the time: the dive would not
    end in time, and the time is better left to the closing search."""
    count = len(sizes)
    root = budget.share(ROOT_SHARE * budget.left())
    columns = _Columns(count, max(1, most_per_host(sizes, room[None, :])))
    for vm in range(count):
        columns.add(np.array([vm]))  # column ``vm`` holds VM ``vm`` alone
    for content in seeds:
        columns.add(content)
    best: list[np.ndarray] | None = None
    lower_bound: int | None = None
    duals = np.zeros(count)
    for attempt in range(MAX_DIVES):
        careful = attempt < len(FIX_FROM)
        whole = FIX_FROM[attempt] if careful else FIX_FROM[0]
        draw = None if careful else np.random.default_rng(attempt)
        limits = (root if attempt == 0 else budget, budget)
        contents, root_duals, bound = _dive_once(sizes, room, columns, duals, whole, draw, limits)
        if not contents:
            break  # the first LP did not converge in time
        if best is None or len(contents) < len(best):
            best = contents
        lower_bound = lower_bound or bound
        if root_duals is None or (lower_bound is not None and len(best) <= lower_bound):
            break  # out of time, or nothing better to find
        duals = root_duals  # the next dive's first LP starts from the cheapest columns
    return None if best is None else Dive(best, lower_bound)


def _dive_once(
    sizes: np.ndarray,
    room: np.ndarray,
    columns: _Columns,
    duals: np.ndarray,
    whole: float,
    draw: np.random.Generator | None,
    budgets: tuple[Budget, Budget],
) -> tuple[list[np.ndarray], np.ndarray | None, int | None]:
    """One dive: the contents of the hosts, the duals of its first LP (None if time ran
    out), and that LP's bound (None if its pricing was cut short). The first LP must be
    solved within the first budget (else no contents at all), the dive within the second."""
    count = len(sizes)
    columns.usable[: columns.size] = True
    placed = np.zeros(count, dtype=bool)
    chosen: list[np.ndarray] = []
    root_duals: np.ndarray | None = None
    lower_bound: int | None = None
    while not placed.all():
        open_vms = np.flatnonzero(~placed)
        usable = np.flatnonzero(columns.usable[: columns.size])
        keep = LP_COLUMNS_PER_VM * len(open_vms)
        if len(usable) > keep:
            cost = columns.reduced_costs(duals)[usable]
            usable = usable[np.argsort(cost, kind="stable")[:keep]]
        master = _Master(open_vms, count)
        for column in [*open_vms, *usable]:
            master.add(int(column), columns.content(int(column)))
        at_root = root_duals is None
        limit = budgets[0] if at_root else budgets[1]
        generated = _generate(master, columns, sizes, room, placed, limit)
        if generated is None and at_root:
            return [], None, None
        if generated is None:  # out of time: first fit packs what is still open
            return chosen + _first_fit(sizes, room, np.flatnonzero(~placed)), None, lower_bound
        value, duals, complete = generated
        if root_duals is None:
            root_duals = duals
            if complete:
                # No column is worth more than PRICE, so the duals scaled down by it are
                # feasible: a bound whatever the rounding of the LP.
                lower_bound = math.ceil(value / PRICE - 1e-5)
        values = master.values()
        order = np.argsort(-values, kind="stable")
        # The content the LP uses most, and with it every other one it uses at ``whole``
        # or more: fixing a few at a time keeps the rounds few, and costs little in hosts.
        first = order[0]
        if draw is not None:  # any the LP uses at least half as much as the most used
            first = draw.choice(order[: int((values >= values[first] / 2).sum())])
        take = [first, *(i for i in order if i != first and values[i] > whole)]
        for i in take:
            content = columns.content(master.columns[i])
            if placed[content].any():
                continue
            placed[content] = True
            chosen.append(content)
            for vm in content:
                columns.set_aside(int(vm))
    return chosen, root_duals, lower_bound


def _generate(
    master: _Master,
    columns: _Columns,
    sizes: np.ndarray,
    room: np.ndarray,
    placed: np.ndarray,
    budget: Budget,
) -> tuple[float, np.ndarray, bool] | None:
    """Price columns into the LP until none is worth adding: the LP value, its duals, and
    whether the last pricing was complete (the value is then the LP optimum over all
    contents), or None when the budget runs out."""
    while True:
        if budget.exhausted:
            return None
        solved = master.solve()
        if solved is None:
            return None  # the dive ends as if out of time
        value, duals = solved
        open_vms = np.flatnonzero(~placed & (duals > 1e-9))
        order = open_vms[np.argsort(-duals[open_vms], kind="stable")]
        sets, _, complete = valuable_sets(
            sizes[order], duals[order], room, COLUMNS_PER_ROUND, PRICING_NODES
        )
        contents = [order[s] for s in sets]
        if not any([master.add(columns.add(c), c) for c in contents]):
            # Nothing new: more rounds would only repeat. Columns found again (LP rounding)
            # break the premise of the bound, so only an empty search proves it.
            return value, duals, complete and not contents


def _first_fit(sizes: np.ndarray, room: np.ndarray, vms: np.ndarray) -> list[np.ndarray]:
    """First fit decreasing (by the largest share of a host) of ``vms`` on new hosts."""
    largest = (sizes[vms] / room).max(axis=1)
    free: list[np.ndarray] = []
    contents: list[list[int]] = []
    for vm in vms[np.argsort(-largest, kind="stable")]:
        host = next((h for h, f in enumerate(free) if (sizes[vm] <= f).all()), len(free))
        if host == len(free):
            free.append(room.copy())
            contents.append([])
        free[host] -= sizes[vm]
        contents[host].append(int(vm))
    return [np.array(c, dtype=np.int64) for c in contents]


def packs_from_scratch(cluster: Cluster) -> bool:
    """VMs all waiting, hosts all alike and empty, no rules: the case the dive is for."""
    hosts = [h for h in cluster.hosts if h.accepts_vms]
    return (
        len(cluster.vms) > 0
        and not cluster.rules
        and all(vm.host is None for vm in cluster.vms)
        and bool(hosts)
        and all(h.capacity == hosts[0].capacity for h in hosts)
    )


def dive_packing(
    cluster: Cluster, start: Mapping[str, str | None], budget: Budget
) -> tuple[dict[str, str | None] | None, int | None]:
    """A packing found by the dive and the LP's lower bound on the hosts needed (None if
    pricing was cut short). The packing is None when the dive does not suit the case (many
    VMs to a host, more VMs than the time left covers, a VM larger than a host) or needs
    more hosts than there are."""
    problem = _packing_problem(cluster)
    if problem is None:
        return None, None
    names, sizes, room = problem
    row = {name: i for i, name in enumerate(names)}
    by_host: dict[str, list[int]] = {}
    for vm, on in start.items():
        if on is not None:
            by_host.setdefault(on, []).append(row[vm])
    if len(names) > MAX_VMS_PER_HOST * max(1, len(by_host)):
        return None, None
    if len(names) > VMS_PER_ROOT_SECOND * math.sqrt(budget.left()):
        return None, None
    found = dive(sizes, room, [np.array(c) for c in by_host.values()], budget)
    return _placed(cluster, names, found)


@dataclass(frozen=True)
class SizedPacking:
    """A packing from scratch seen as counts of VMs per size, for the dive over sizes."""

    names: list[str]
    kinds: np.ndarray  # the distinct sizes
    counts: np.ndarray  # VMs of each size
    kind_of: np.ndarray  # each VM's size, by row of ``names``
    room: np.ndarray  # a host's


def sized_packing(cluster: Cluster, seconds: float) -> SizedPacking | None:
    """The packing over VM sizes when the dive over sizes takes it rather than the dive VM
    by VM: more than five VMs to a host (by the volume bound) or more VMs than ``seconds``
    cover, in at most ``MAX_TYPES`` sizes; None otherwise."""
    problem = _packing_problem(cluster)
    if problem is None:
        return None
    names = problem[0]
    many = len(names) > MAX_VMS_PER_HOST * active_hosts_lower_bound(cluster)
    if not many and len(names) <= VMS_PER_ROOT_SECOND * math.sqrt(seconds):
        return None
    return _by_size(problem)


def dive_by_size_packing(
    cluster: Cluster, sized: SizedPacking, budget: Budget
) -> tuple[dict[str, str | None] | None, int | None]:
    """The dive over VM sizes (``by_type.py``), each host's counts then filled with VMs of
    those sizes in the scenario's order: the packing and its LP bound, as ``dive_packing``."""
    typed = typed_dive(sized.kinds, sized.counts, sized.room, budget)
    if typed is None:
        return None, None
    kinds = range(len(sized.kinds))
    waiting = [list(np.flatnonzero(sized.kind_of == k)[::-1]) for k in kinds]
    contents = [
        np.array([waiting[k].pop() for k in kinds for _ in range(int(c[k]))])
        for c in typed.contents
    ]
    return _placed(cluster, sized.names, Dive(contents, typed.lower_bound))


def lp_bound_by_size(cluster: Cluster, budget: Budget) -> int | None:
    """The hosts the LP over VM sizes proves necessary to hold every VM on hosts alike to
    the first that takes VMs; None when the sizes are many or pricing did not end in time."""
    problem = _packing_problem(cluster)
    sized = _by_size(problem) if problem is not None else None
    if sized is None:
        return None
    return lp_lower_bound(sized.kinds, sized.counts, sized.room, budget)


def _by_size(problem: tuple[list[str], np.ndarray, np.ndarray]) -> SizedPacking | None:
    names, sizes, room = problem
    kinds, counts, kind_of = types_of(sizes)
    if len(kinds) > MAX_TYPES:
        return None
    return SizedPacking(names, kinds, counts, kind_of, room)


def _packing_problem(cluster: Cluster) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    """The VMs' names, their sizes and a host's room, over the resources hosts have; None if
    a VM is larger than a host."""
    hosts = [h for h in cluster.hosts if h.accepts_vms]
    resources = cluster.resources
    room = np.array([hosts[0].capacity.get(r, 0) for r in resources], dtype=np.int64)
    vms = cluster.vms
    sizes = np.array(
        [[vm.demand.get(r, 0) for r in resources] for vm in vms], dtype=np.int64
    ).reshape(len(vms), len(resources))
    if (sizes > room).any():
        return None
    counted = room > 0  # a resource no host has is one no VM asks for
    return [vm.name for vm in vms], sizes[:, counted], room[counted]


def _placed(
    cluster: Cluster, names: list[str], found: Dive | None
) -> tuple[dict[str, str | None] | None, int | None]:
    if found is None:
        return None, None
    hosts = [h for h in cluster.hosts if h.accepts_vms]
    if len(found.contents) > len(hosts):
        return None, found.lower_bound
    placement: dict[str, str | None] = {}
    for host, content in zip(hosts, found.contents, strict=False):
        placement.update({names[vm]: host.name for vm in content})
    return placement, found.lower_bound
