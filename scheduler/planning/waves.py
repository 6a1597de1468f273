"""Target placement -> ordered waves of moves that are safe at every step (a pure function).

During a wave every moving VM is counted on both its source and its destination, so a wave
is admitted only if every destination has room for what it already holds plus everything
arriving in that wave, hard rules hold with the movers present on both hosts, and the
parallel limits hold. The members of a hard affinity group move in the same wave.

Order comes from the move dependency graph (networkx): an edge a -> b says that move a goes
to the host move b leaves, so b should go first. When no move can start (a swap cycle with
every destination full) one VM of a blocked move is parked on a host with room and goes on
to its destination later; if no host can take it the moves are reported as unresolved.

Under an HA policy that holds today, a move joins a wave only if the reserve still holds once
the wave is done, so a plan passes through no state where a host failure strands VMs; when no
pending move keeps it, the wave is built without that test (the plan must not stall) and the
checker names the wave. ``ReserveWatch`` answers each test by looking again only at the
failures a move can affect.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import networkx as nx

from scheduler.ha.watch import ReserveWatch
from scheduler.model import Cluster, Goal, HostState, iter_moves
from scheduler.placement.evaluate import is_migration
from scheduler.placement.state import PlacementState
from scheduler.solver.budget import Budget


@dataclass(frozen=True)
class Move:
    vm: str
    source: str | None
    target: str
    kind: str  # "migrate", "place" (a waiting VM) or "restart" (from a host that is down)
    parking: bool = False  # a stop on the way, to break a swap cycle


Wave = tuple[Move, ...]


@dataclass(frozen=True)
class Plan:
    scenario: str
    goal: Goal
    placement: Mapping[str, str | None]
    waves: tuple[Wave, ...]
    unresolved: tuple[Move, ...] = ()
    reserve_breaks: tuple[str, ...] = ()  # waves after which a reserve held today would not

    @property
    def moves(self) -> list[Move]:
        return [m for wave in self.waves for m in wave]


def starting_placement(cluster: Cluster) -> dict[str, str | None]:
    """Where VMs are when the plan starts: VMs of a host that is down are nowhere."""
    hosts = cluster.host_by_name
    return {
        v.name: (v.host if v.host and hosts[v.host].state is not HostState.DOWN else None)
        for v in cluster.vms
    }


def _reserve_of(cluster: Cluster) -> ReserveWatch | None:
    if not cluster.policy.ha.required:
        return None
    watch = ReserveWatch(cluster)
    return watch if watch.holds else None


def order_moves(
    cluster: Cluster, target: Mapping[str, str | None], budget: Budget | None = None
) -> tuple[list[Wave], list[Move], list[str]]:
    """Waves that lead from the current placement to ``target``, the moves left unresolved
    and the waves that had to break the HA reserve. Following the reserve wave by wave is
    what costs time; once ``budget`` is spent the remaining waves are ordered without it, and
    are named among the breaks (automation never runs such a plan)."""
    units = _units(cluster, target)
    state = PlacementState(cluster, starting_placement(cluster))
    rank = _rank(units)
    pending = sorted(range(len(units)), key=rank.__getitem__)
    parked: set[str] = set()
    waves: list[Wave] = []
    reserve = _reserve_of(cluster) if units else None
    breaks: list[str] = []
    unguarded_from = 0
    while pending:
        if reserve is not None and budget is not None and budget.exhausted:
            reserve, unguarded_from = None, len(waves) + 1
        wave, started = _next_wave(cluster, state, units, pending, reserve)
        watched = bool(wave)  # the reserve watch has made these moves already
        if not wave and reserve is not None:
            wave, started = _next_wave(cluster, state, units, pending, None)
        if not wave:
            wave = _park_one(cluster, state, units, pending, parked)
            if not wave:
                break
        else:
            pending = [u for u in pending if u not in started]
        for move in wave:
            if move.source is not None:
                state.remove(move.vm, move.source)
        held = watched or reserve is None or reserve.force_wave([(m.vm, m.target) for m in wave])
        if not held and reserve is not None:
            breaks.append(f"wave {len(waves) + 1}: {reserve.breach()}")
        waves.append(tuple(wave))
    if unguarded_from:
        breaks.append(
            f"waves {unguarded_from}-{len(waves)}: ordered once the time limit was spent, "
            "without following the reserve (a longer time limit follows it)"
        )
    unresolved = [m for u in pending for m in units[u]]
    return waves, unresolved, breaks


def _units(cluster: Cluster, target: Mapping[str, str | None]) -> list[list[Move]]:
    start = starting_placement(cluster)
    moves = {
        vm: Move(vm, source, host, _kind(cluster, vm, source))
        for vm, source, host in iter_moves(start, target)
    }
    units: list[list[Move]] = []
    grouped: set[str] = set()
    now = PlacementState(cluster, start)
    for rule in cluster.hard_rules:
        # A group already apart cannot be broken by moving its VMs one by one (the checker
        # lets a broken rule stay broken, never worse): they need not share a wave, which
        # more of them than max_parallel_per_host toward one host could never do.
        if not rule.wave_group or rule.violations(cluster, now):
            continue
        group = [moves[vm] for vm in rule.wave_group if vm in moves and vm not in grouped]
        if group:
            units.append(group)
            grouped.update(m.vm for m in group)
    units += [[m] for vm, m in moves.items() if vm not in grouped]
    return units


def _kind(cluster: Cluster, vm: str, source: str | None) -> str:
    if source is not None:
        return "migrate"
    original = cluster.vm_by_name[vm].host
    return "place" if original is None or is_migration(cluster, original) else "restart"


def _rank(units: list[list[Move]]) -> dict[int, int]:
    """Units that free room others wait for come first (reverse topological order)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(units)))
    leaving: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        for move in unit:
            if move.source is not None:
                leaving.setdefault(move.source, []).append(i)
    for i, unit in enumerate(units):
        for move in unit:
            graph.add_edges_from((i, j) for j in leaving.get(move.target, ()) if j != i)
    condensed = nx.condensation(graph)
    order = list(reversed(list(nx.topological_sort(condensed))))
    position = {component: k for k, component in enumerate(order)}
    return {i: position[condensed.graph["mapping"][i]] for i in range(len(units))}


def _next_wave(
    cluster: Cluster,
    state: PlacementState,
    units: list[list[Move]],
    pending: list[int],
    reserve: ReserveWatch | None,
) -> tuple[list[Move], set[int]]:
    limits = cluster.limits
    wave: list[Move] = []
    started: set[int] = set()
    per_host: Counter[str] = Counter()
    for u in pending:
        if len(wave) >= limits.max_parallel:
            break  # full: the units left would only be tried in vain
        unit = units[u]
        if len(wave) + len(unit) > limits.max_parallel:
            continue
        if _try_start(state, unit, per_host, limits.max_parallel_per_host):
            if reserve is not None and not reserve.try_moves([(m.vm, m.target) for m in unit]):
                _undo_start(state, unit, per_host)
                continue
            wave += unit
            started.add(u)
    return wave, started


def _undo_start(state: PlacementState, unit: list[Move], per_host: Counter[str]) -> None:
    for move in unit:
        state.remove(move.vm, move.target)
    per_host.subtract(h for m in unit for h in (m.source, m.target) if h is not None)


def _try_start(
    state: PlacementState, unit: list[Move], per_host: Counter[str], per_host_limit: int
) -> bool:
    touched = Counter(h for m in unit for h in (m.source, m.target) if h is not None)
    if any(per_host[h] + n > per_host_limit for h, n in touched.items()):
        return False
    added: list[Move] = []
    for move in unit:
        if not (
            state.cluster.host_by_name[move.target].accepts_vms
            and state.has_room(move.vm, move.target)
            and state.rules_admit(move.vm, move.target, moving_with_group=True)
        ):
            for done in added:  # undo the partial unit
                state.remove(done.vm, done.target)
            return False
        state.add(move.vm, move.target)  # present on both hosts while it migrates
        added.append(move)
    per_host.update(touched)
    return True


def _park_one(
    cluster: Cluster,
    state: PlacementState,
    units: list[list[Move]],
    pending: list[int],
    parked: set[str],
) -> list[Move]:
    """Break a cycle: send one blocked VM to a host with room, then on to its target later."""
    for u in pending:
        unit = units[u]
        if len(unit) != 1 or unit[0].source is None or unit[0].vm in parked:
            continue
        move = unit[0]
        for host in _parking_hosts(cluster, state, move):
            if state.can_take(move.vm, host):
                state.add(move.vm, host)
                parked.add(move.vm)
                units[u] = [Move(move.vm, host, move.target, move.kind)]
                return [Move(move.vm, move.source, host, move.kind, parking=True)]
    return []


def _parking_hosts(cluster: Cluster, state: PlacementState, move: Move) -> list[str]:
    """Hosts other than source and target, the emptiest first."""

    def free(host: str) -> float:
        capacity = cluster.host_by_name[host].capacity
        load = state.load[host]
        return min((1 - load.get(r, 0) / c for r, c in capacity.items() if c > 0), default=0.0)

    others = [h.name for h in cluster.hosts if h.name not in (move.source, move.target)]
    return sorted(others, key=free, reverse=True)


def build_plan(
    cluster: Cluster,
    goal: Goal,
    target: Mapping[str, str | None],
    scenario: str = "",
    budget: Budget | None = None,
) -> Plan:
    waves, unresolved, breaks = order_moves(cluster, target, budget)
    return Plan(
        scenario or cluster.name, goal, dict(target), tuple(waves), tuple(unresolved),
        tuple(breaks),
    )  # fmt: skip
