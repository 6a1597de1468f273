"""Indicators of a placement, computed without the solver: hosts, moves, memory moved,
utilisation per resource, soft-rule penalty, and the per-goal score used to compare two
placements (lower is better, compared as a tuple).

``GOAL_TIERS`` is the one table of what each goal minimises, most important first: ``score``
reads it here and the CP-SAT objective (``solver.cpsat.objective``) builds its tiers from it,
so the solver and the searches around it rank placements alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.model import Cluster, Goal, HostState, active_hosts, host_loads, iter_moves
from scheduler.placement.state import PlacementState

GOAL_TIERS: Mapping[Goal, tuple[str, ...]] = {
    Goal.CONSOLIDATE: ("unplaced", "hosts", "soft", "moves", "memory_gib"),
    Goal.PLACE: ("unplaced", "new_hosts", "soft"),
    Goal.EVACUATE: ("unplaced", "soft", "moves", "new_hosts", "memory_gib"),
    Goal.BALANCE: ("unplaced", "soft", "spread_pct", "moves"),
    Goal.REPAIR: ("unplaced", "moves", "memory_gib", "soft"),
}


def memory_gib(cluster: Cluster, vm: str) -> int:
    """A VM's memory in whole GiB, rounded up: the unit of the memory-moved tier."""
    return -(-cluster.vm_by_name[vm].memory_mib // 1024)


@dataclass(frozen=True)
class Indicators:
    active_hosts: int
    moves: int
    placements: int  # pending or restarted VMs given a host (not migrations)
    memory_moved_mib: int
    memory_moved_gib: int  # each VM rounded up to whole GiB, as the memory tier counts it
    new_hosts: int  # active hosts that run no VM now
    unplaced: int
    stranded: int  # VMs left on a host they had to leave
    soft_penalty: int
    overloaded: int  # hosts whose allocation exceeds their capacity
    utilisation: Mapping[str, tuple[float, float, float]]  # resource -> (min, mean, max)


def is_migration(cluster: Cluster, source: str | None) -> bool:
    return source is not None and cluster.host_by_name[source].state is not HostState.DOWN


def indicators(cluster: Cluster, placement: Mapping[str, str | None]) -> Indicators:
    moves = placements = memory = gib = 0
    for vm, source, _target in iter_moves(cluster.current_placement, placement):
        if is_migration(cluster, source):
            moves += 1
            memory += cluster.vm_by_name[vm].memory_mib
            gib += memory_gib(cluster, vm)
        else:
            placements += 1
    hosts = cluster.host_by_name
    stranded = sum(1 for h in placement.values() if h is not None and not hosts[h].accepts_vms)
    unplaced = sum(1 for h in placement.values() if h is None)
    active = active_hosts(placement)
    running = set(cluster.current_placement.values())
    return Indicators(
        active_hosts=len(active),
        new_hosts=len(active - running),
        memory_moved_gib=gib,
        moves=moves,
        placements=placements,
        memory_moved_mib=memory,
        unplaced=unplaced,
        stranded=stranded,
        soft_penalty=soft_penalty(cluster, placement),
        overloaded=overloaded_hosts(cluster, placement),
        utilisation=utilisation(cluster, placement),
    )


def overloaded_hosts(cluster: Cluster, placement: Mapping[str, str | None]) -> int:
    loads = host_loads(cluster, placement)
    return sum(
        1
        for h in cluster.hosts
        if any(amount > h.capacity.get(r, 0) for r, amount in loads[h.name].items())
    )


def soft_penalty(cluster: Cluster, placement: Mapping[str, str | None]) -> int:
    soft = cluster.soft_rules
    if not soft:
        return 0
    view = PlacementState(cluster, placement)
    return sum(rule.weight * len(rule.violations(cluster, view)) for rule in soft)


def broken_soft_rules(cluster: Cluster, placement: Mapping[str, str | None]) -> list[str]:
    view = PlacementState(cluster, placement)
    return [text for rule in cluster.soft_rules for text in rule.violations(cluster, view)]


def utilisation(
    cluster: Cluster, placement: Mapping[str, str | None]
) -> dict[str, tuple[float, float, float]]:
    """Allocation over capacity per resource, across the hosts that run VMs."""
    loads = host_loads(cluster, placement)
    active = active_hosts(placement)
    used_hosts = [h for h in cluster.hosts if h.name in active]
    out = {}
    for resource in cluster.resources:
        ratios = [
            loads[h.name].get(resource, 0) / h.capacity[resource]
            for h in used_hosts
            if h.capacity.get(resource, 0) > 0
        ]
        if ratios:
            out[resource] = (min(ratios), sum(ratios) / len(ratios), max(ratios))
    return out


def score(cluster: Cluster, goal: Goal, placement: Mapping[str, str | None]) -> tuple[float, ...]:
    """The goal's tiers (``GOAL_TIERS``) for this placement; lower is better."""
    ind = indicators(cluster, placement)
    spread = sum(round(100 * (high - low)) for low, _, high in ind.utilisation.values())
    tiers = {
        "unplaced": ind.unplaced + ind.stranded + ind.overloaded,
        "hosts": ind.active_hosts,
        "new_hosts": ind.new_hosts,
        "soft": ind.soft_penalty,
        "moves": ind.moves,
        "memory_gib": ind.memory_moved_gib,
        "spread_pct": spread,
    }
    return tuple(tiers[name] for name in GOAL_TIERS[goal])
