"""Indicators of a placement, computed without the solver: hosts, moves, memory moved,
utilisation per resource, soft-rule penalty, and the per-goal score used to compare two
placements (lower is better, compared as a tuple: the same tiers as the CP-SAT objective)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.model import Cluster, Goal, HostState, active_hosts, host_loads, iter_moves
from scheduler.placement.state import PlacementState
from scheduler.rules import Rule


@dataclass(frozen=True)
class Indicators:
    active_hosts: int
    moves: int
    placements: int  # pending or restarted VMs given a host (not migrations)
    memory_moved_mib: int
    unplaced: int
    stranded: int  # VMs left on a host they had to leave
    soft_penalty: int
    overloaded: int  # hosts whose allocation exceeds their capacity
    utilisation: Mapping[str, tuple[float, float, float]]  # resource -> (min, mean, max)


def is_migration(cluster: Cluster, source: str | None) -> bool:
    return source is not None and cluster.host_by_name[source].state is not HostState.DOWN


def indicators(cluster: Cluster, placement: Mapping[str, str | None]) -> Indicators:
    moves = placements = memory = 0
    for vm, source, _target in iter_moves(cluster.current_placement, placement):
        if is_migration(cluster, source):
            moves += 1
            memory += cluster.vm_by_name[vm].memory_mib
        else:
            placements += 1
    hosts = cluster.host_by_name
    stranded = sum(1 for h in placement.values() if h is not None and not hosts[h].accepts_vms)
    unplaced = sum(1 for h in placement.values() if h is None)
    return Indicators(
        active_hosts=len(active_hosts(placement)),
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
    soft = [r for r in cluster.rules if isinstance(r, Rule) and r.soft]
    if not soft:
        return 0
    view = PlacementState(cluster, placement)
    return sum(rule.weight * len(rule.violations(cluster, view)) for rule in soft)


def broken_soft_rules(cluster: Cluster, placement: Mapping[str, str | None]) -> list[str]:
    view = PlacementState(cluster, placement)
    return [
        text
        for rule in cluster.rules
        if isinstance(rule, Rule) and rule.soft
        for text in rule.violations(cluster, view)
    ]


def utilisation(
    cluster: Cluster, placement: Mapping[str, str | None]
) -> dict[str, tuple[float, float, float]]:
    """Allocation over capacity per resource, across the hosts that run VMs."""
    loads = host_loads(cluster, placement)
    used_hosts = [h for h in cluster.hosts if h.name in active_hosts(placement)]
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
    ind = indicators(cluster, placement)
    missing = ind.unplaced + ind.stranded + ind.overloaded
    if goal is Goal.CONSOLIDATE:
        return (missing, ind.active_hosts, ind.soft_penalty, ind.moves, ind.memory_moved_mib)
    if goal is Goal.PLACE:
        return (missing, ind.active_hosts, ind.soft_penalty)
    if goal is Goal.EVACUATE:
        return (missing, ind.soft_penalty, ind.moves, ind.active_hosts, ind.memory_moved_mib)
    spread = sum(round(100 * (high - low)) for low, _, high in ind.utilisation.values())
    return (missing, ind.soft_penalty, spread, ind.moves)
