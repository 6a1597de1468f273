"""A consolidation target with fewer moves, from the host contents the move LP priced
(``moves_lp.py``).

Two CP-SAT models, each small:

- the master picks one priced content per host (or nothing), such that every class is held
  on no more hosts than the incumbent uses, with the fewest moves; the LP mostly picks one
  content per host already, and those hosts keep it;
- the split turns each host's count per class into counts per VM size (every resource, not
  only the one the classes are made of), keeping each host's count per class and as many
  of its own VMs as it can.

The contents fix which hosts stay and how full they get; the split only trades VMs of one
class between sizes, which is why it is quick where a model over sizes of the whole cluster
is not. On half-consolidated at 1,000 hosts / 10,000 VMs it took a 340-host target from
1,295 moves to 764, against an LP bound of 743. VMs that a rule names stay where the
incumbent has them, as load of their host.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ortools.sat.python import cp_model

from scheduler.model import VM, Cluster, Goal, active_hosts
from scheduler.placement.evaluate import indicators, score
from scheduler.solver.bounds import moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.by_size import placement_of_counts, sizes_of
from scheduler.solver.cpsat.solve import SolverSettings, solve_within
from scheduler.solver.dive.by_type import most_that_fit
from scheduler.solver.moves_lp import (
    Classes,
    Columns,
    classes_of,
    contents_of,
    generate,
    moves_of,
)

PRICING_SHARE = 0.3  # of the stage's budget, at most, for the LP
SETTLED_SHARE = 0.3  # of what is left, for the master over the hosts the LP left unsettled
MASTER_SHARE = 0.3  # of what is left, for the master over every host, if that is needed
WORKERS = 4
# Beyond this many hosts the stage is left out: at 10,000 hosts / 100,000 VMs, with the stage,
# a 60 s plan took 125.6 s.
MAX_HOSTS = 5_000
SWAPS_PER_HOST = 2  # at most, for the split's hint


def fewer_moves_target(
    cluster: Cluster,
    goal: Goal,
    incumbent: Mapping[str, str | None],
    settings: SolverSettings,
    budget: Budget,
) -> dict[str, str | None] | None:
    """A placement on no more hosts than ``incumbent`` that scores better, or None."""
    if goal is not Goal.CONSOLIDATE or len(cluster.hosts) > MAX_HOSTS:
        return None
    placed = [vm for vm, host in incumbent.items() if host is not None]
    hosts_after = len(active_hosts(incumbent))
    if indicators(cluster, incumbent).moves <= moves_lower_bound(cluster, hosts_after, placed):
        return None  # the moves are already the fewest the host count allows
    named = {vm for rule in cluster.rules for vm in rule.vms}
    fixed = {vm for vm in named if incumbent.get(vm) is not None}
    classes = classes_of(cluster, incumbent, fixed)
    if classes is None or not classes.exact:
        return None
    start = contents_of(classes, incumbent)
    columns = generate(classes, hosts_after, start, budget.share(PRICING_SHARE * budget.limit))
    now = sum(moves_of(classes, h, start[h]) for h in range(len(classes.hosts)))
    if not columns.favourites or now <= np.ceil(columns.bound - 1e-6):
        return None  # no LP, or the incumbent's moves are already the fewest possible
    chosen = _master(classes, columns, hosts_after, settings, budget)
    if chosen is None:
        return None
    placement = _split(cluster, classes, chosen, incumbent, fixed, settings, budget)
    if placement is None or score(cluster, goal, placement) >= score(cluster, goal, incumbent):
        return None
    return placement


def _master(
    classes: Classes,
    columns: Columns,
    hosts_after: int,
    settings: SolverSettings,
    budget: Budget,
) -> np.ndarray | None:
    """One priced content per host, holding every class on at most ``hosts_after`` hosts,
    with few moves; hosts x classes, or None. The hosts the LP settled on one content keep
    it and the master chooses for the others; failing that, it chooses for every host."""
    settled = columns.settled
    chosen = _choose(
        classes, columns, hosts_after, settled, settings, budget.fraction(SETTLED_SHARE)
    )
    if chosen is None:
        everyone = np.zeros(len(classes.hosts), dtype=bool)
        chosen = _choose(
            classes, columns, hosts_after, everyone, settings, budget.fraction(MASTER_SHARE)
        )
    return None if chosen is None else _trimmed(classes, chosen)


def _choose(
    classes: Classes,
    columns: Columns,
    hosts_after: int,
    settled: np.ndarray,
    settings: SolverSettings,
    budget: Budget,
) -> np.ndarray | None:
    """The master over the hosts not ``settled``, hinted with the LP's choices; the settled
    keep the LP's content. Contents may hold more of a class than there are VMs."""
    chosen = np.zeros_like(classes.owned)
    for host in np.flatnonzero(settled):
        chosen[host] = columns.favourites[host]
    left = classes.counts - chosen.sum(axis=0)
    settled_active = sum(1 for x in np.flatnonzero(settled) if chosen[x].any() or classes.held[x])
    model = cp_model.CpModel()
    picks: list[tuple[int, np.ndarray, cp_model.IntVar]] = []
    for host in np.flatnonzero(~settled):
        options = []
        for content in columns.contents[host]:
            pick = model.new_bool_var(f"h{host}")
            model.add_hint(pick, bool((content == columns.favourites[host]).all()))
            options.append(pick)
            picks.append((int(host), content, pick))
        model.add_exactly_one(options)
    for k, count in enumerate(left.tolist()):
        model.add(sum(int(c[k]) * pick for _, c, pick in picks if c[k]) >= count)
    active = [pick for h, c, pick in picks if c.any() or classes.held[h]]
    model.add(sum(active) <= hosts_after - settled_active)
    model.minimize(sum(moves_of(classes, h, c) * pick for h, c, pick in picks))
    solver = _solver(settings)
    if solve_within(solver, model, budget) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    for h, content, pick in picks:
        if solver.value(pick):
            chosen[h] = content
    return chosen


def _solver(settings: SolverSettings) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = min(WORKERS, settings.worker_count)
    solver.parameters.random_seed = settings.seed
    return solver


def _trimmed(classes: Classes, chosen: np.ndarray) -> np.ndarray:
    """``chosen`` holding each class exactly: a surplus comes off first where the host was
    to take VMs it does not run (no move lost), then where it keeps its own."""
    chosen = chosen.copy()
    for k, count in enumerate(classes.counts.tolist()):
        surplus = int(chosen[:, k].sum()) - count
        incoming = chosen[:, k] - np.minimum(chosen[:, k], classes.owned[:, k])
        for h in np.argsort(-incoming, kind="stable"):
            if surplus <= 0:
                break
            cut = min(surplus, int(incoming[h]) or int(chosen[h, k]))
            chosen[h, k] -= cut
            surplus -= cut
    return chosen


def _split(
    cluster: Cluster,
    classes: Classes,
    chosen: np.ndarray,
    incumbent: Mapping[str, str | None],
    fixed: set[str],
    settings: SolverSettings,
    budget: Budget,
) -> dict[str, str | None] | None:
    """VMs for the contents ``chosen``: per host, how many of each VM size, its count per
    class kept, every resource within the host's room, fewest of its own VMs leaving."""
    sizes = _Sizes.of(cluster, classes)
    if sizes is None:
        return None
    room = _room(cluster, classes, incumbent, fixed)
    hint = _greedy(classes, sizes, chosen, room)
    kinds, of_class = sizes.kinds, sizes.class_of
    kept = [h for h in range(len(classes.hosts)) if chosen[h].any()]
    model = cp_model.CpModel()
    holds: dict[tuple[int, int], cp_model.IntVar] = {}
    leaving = []
    for h in kept:
        for t in range(len(kinds)):
            most = min(
                int(chosen[h, of_class[t]]), most_that_fit(kinds[t], room[h], sizes.count(t))
            )
            if classes.only_own[h]:
                most = min(most, int(sizes.owned[h, t]))
            holds[h, t] = model.new_int_var(0, most, f"n{h},{t}")
            model.add_hint(holds[h, t], min(most, int(hint[h, t])))
            if sizes.owned[h, t]:
                gone = model.new_int_var(0, int(sizes.owned[h, t]), f"gone{h},{t}")
                model.add(gone >= int(sizes.owned[h, t]) - holds[h, t])
                model.add_hint(gone, max(0, int(sizes.owned[h, t]) - min(most, int(hint[h, t]))))
                leaving.append(gone)
        for k in np.flatnonzero(chosen[h]):
            model.add(
                sum(holds[h, t] for t in range(len(kinds)) if of_class[t] == k) == int(chosen[h, k])
            )
        if not classes.only_own[h]:
            for r in np.flatnonzero(kinds.any(axis=0)):
                load = sum(int(kinds[t, r]) * holds[h, t] for t in range(len(kinds)) if kinds[t, r])
                model.add(load <= int(room[h, r]))
    for t in range(len(kinds)):
        model.add(sum(holds[h, t] for h in kept) == sizes.count(t))
    model.minimize(sum(leaving))
    solver = _solver(settings)
    if solve_within(solver, model, budget) not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    found = np.zeros((len(classes.hosts), len(kinds)), dtype=np.int64)
    for (h, t), variable in holds.items():
        found[h, t] = solver.value(variable)
    return placement_of_counts(incumbent, classes.hosts, sizes.free, found)


class _Sizes:
    """The VM sizes (every resource) of the classes' VMs: each size's class and VMs, and
    per host how many of each size it runs now."""

    def __init__(
        self, kinds: np.ndarray, class_of: np.ndarray, free: list[list[VM]], owned: np.ndarray
    ):
        self.kinds, self.class_of, self.free, self.owned = kinds, class_of, free, owned

    def count(self, kind: int) -> int:
        return len(self.free[kind])

    @classmethod
    def of(cls, cluster: Cluster, classes: Classes) -> _Sizes | None:
        vms = sorted(
            (cluster.vm_by_name[name] for names in classes.members for name in names),
            key=lambda v: v.name,
        )
        sized = sizes_of(cluster, vms, classes.hosts)
        if sized is None:
            return None
        kinds, _, free, owned = sized
        column = list(cluster.resources).index(classes.resource)
        weight = {int(w): k for k, w in enumerate(classes.weights.tolist())}
        class_of = np.array([weight[int(kind[column]) // classes.unit] for kind in kinds])
        return cls(kinds, class_of, free, owned)


def _greedy(classes: Classes, sizes: _Sizes, chosen: np.ndarray, room: np.ndarray) -> np.ndarray:
    """A hint for the split: each host keeps its own VMs up to its count per class, and the
    VMs left over go, largest first, to the host with a free place in their class and the
    most room left where they fit (or the most room, if none fits)."""
    hint = np.zeros_like(sizes.owned)
    places = chosen.copy()
    free = room.astype(float).copy()
    for h in np.flatnonzero(chosen.any(axis=1)):
        for t in np.argsort(-sizes.kinds.max(axis=1), kind="stable"):
            keep = min(int(sizes.owned[h, t]), int(places[h, sizes.class_of[t]]))
            hint[h, t] += keep
            places[h, sizes.class_of[t]] -= keep
            free[h] -= keep * sizes.kinds[t]
    left = np.array([sizes.count(t) for t in range(len(sizes.kinds))]) - hint.sum(axis=0)
    scale = np.maximum(room.max(axis=0), 1)
    for t in np.argsort(-(sizes.kinds / scale).sum(axis=1), kind="stable"):
        k = sizes.class_of[t]
        for _ in range(int(left[t])):
            open_ = np.flatnonzero(places[:, k] > 0)
            if not len(open_):
                break
            slack = (free[open_] - sizes.kinds[t]) / scale
            fits = (slack >= 0).all(axis=1)
            pool = open_[fits] if fits.any() else open_
            best = pool[np.argmax(slack[fits].min(axis=1) if fits.any() else slack.min(axis=1))]
            hint[best, t] += 1
            places[best, k] -= 1
            free[best] -= sizes.kinds[t]
    return _swapped_to_fit(sizes, hint, room)


def _swapped_to_fit(sizes: _Sizes, hint: np.ndarray, room: np.ndarray) -> np.ndarray:
    """The hint with hosts over their room relieved by swaps of two VMs of one class between
    two hosts (counts per class stay): on the host most over, the swap that cuts the excess
    of the two hosts most, and of those the one that costs fewest moves."""
    kinds = sizes.kinds
    scale = np.maximum(room.max(axis=0), 1).astype(float)
    load = hint @ kinds

    def excess(loads: np.ndarray, rooms: np.ndarray) -> np.ndarray:
        return np.asarray((np.maximum(loads - rooms, 0) / scale).sum(axis=-1))

    def lost(h: np.ndarray | int, t: int, change: int) -> np.ndarray:
        before = np.maximum(sizes.owned[h, t] - hint[h, t], 0)
        return np.asarray(np.maximum(sizes.owned[h, t] - hint[h, t] - change, 0) - before)

    for _ in range(SWAPS_PER_HOST * len(hint)):
        over = excess(load, room)
        h = int(np.argmax(over))
        if over[h] <= 0:
            break
        best: tuple[float, int, int, int, int] | None = None  # gain, -moves, t, u, g
        for t in map(int, np.flatnonzero(hint[h])):
            for u in map(int, np.flatnonzero(sizes.class_of == sizes.class_of[t])):
                delta = kinds[u] - kinds[t]  # h takes a VM of size u for one of size t
                others = np.flatnonzero(hint[:, u] > 0)
                others = others[others != h]
                if u == t or not len(others):
                    continue
                there = load[others], room[others]
                gain = over[h] - excess(load[h] + delta, room[h])
                gain += excess(*there) - excess(there[0] - delta, there[1])
                moves = lost(h, t, -1) + lost(h, u, 1) + lost(others, u, -1) + lost(others, t, 1)
                g = int(np.lexsort((moves, -gain))[0])
                if gain[g] > 1e-12 and (best is None or (gain[g], -moves[g]) > best[:2]):
                    best = (float(gain[g]), -int(moves[g]), t, u, int(others[g]))
        if best is None:
            break
        _, _, t, u, g = best
        hint[h, t] -= 1
        hint[h, u] += 1
        hint[g, u] -= 1
        hint[g, t] += 1
        load[h] += kinds[u] - kinds[t]
        load[g] += kinds[t] - kinds[u]
    return hint


def _room(
    cluster: Cluster, classes: Classes, incumbent: Mapping[str, str | None], fixed: set[str]
) -> np.ndarray:
    """Hosts x resources: each host's capacity less what the VMs fixed to it take."""
    resources = cluster.resources
    room = np.array(
        [[cluster.host_by_name[h].capacity.get(r, 0) for r in resources] for h in classes.hosts],
        dtype=np.int64,
    )
    row = {h: i for i, h in enumerate(classes.hosts)}
    for name in fixed:
        host = row.get(str(incumbent[name]))
        if host is not None:
            room[host] -= [cluster.vm_by_name[name].demand.get(r, 0) for r in resources]
    return np.maximum(room, 0)
