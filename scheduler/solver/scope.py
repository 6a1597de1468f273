"""Which VMs a goal lets the solver move, and onto which hosts: the scope of the whole model
and of each neighbourhood of the large-neighbourhood search."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from scheduler.model import Cluster, Goal, HostState
from scheduler.placement.state import PlacementState, statically_allowed
from scheduler.rules import Rule
from scheduler.solver.cpsat.encoding import Scope


def must_leave(cluster: Cluster, goal: Goal) -> list[str]:
    """Running VMs on a host in maintenance (the place goal moves nothing)."""
    if goal is Goal.PLACE:
        return []
    hosts = cluster.host_by_name
    return [
        v.name for v in cluster.vms
        if v.host is not None and hosts[v.host].state is HostState.MAINTENANCE
    ]  # fmt: skip


def pending(cluster: Cluster) -> list[str]:
    """VMs waiting for a host: new ones and those of a host that is down."""
    hosts = cluster.host_by_name
    return [v.name for v in cluster.vms if v.host is None or hosts[v.host].state is HostState.DOWN]


def in_broken_rules(cluster: Cluster, placement: Mapping[str, str | None]) -> list[str]:
    """The VMs of the hard rules ``placement`` breaks."""
    view = PlacementState(cluster, placement)
    return sorted(
        {vm for rule in cluster.hard_rules if rule.violations(cluster, view) for vm in rule.vms}
    )


def whole_members(
    cluster: Cluster, goal: Goal, start: Mapping[str, str | None]
) -> tuple[list[str], list[str]]:
    """The VMs the whole model may move and the hosts it may use, before any pair of them is
    looked at: their product says whether a model of the whole cluster is worth building."""
    waiting = set(pending(cluster))
    leaving = set(must_leave(cluster, goal))
    if goal is Goal.PLACE:
        free = sorted(waiting)
    elif goal is Goal.EVACUATE and len(cluster.vms) * len(cluster.hosts) > 30_000:
        free = sorted(waiting | leaving)
    elif goal is Goal.REPAIR and len(cluster.vms) * len(cluster.hosts) > 30_000:
        free = sorted(waiting | leaving | set(in_broken_rules(cluster, start)))
    else:
        free = [v.name for v in cluster.vms]
    hosts = [h.name for h in cluster.hosts if h.accepts_vms]
    if goal is Goal.BALANCE:
        running = {h for h in cluster.current_placement.values() if h is not None}
        hosts = [h for h in hosts if h in running] or hosts
    return free, hosts


def whole_scope(cluster: Cluster, goal: Goal, start: Mapping[str, str | None]) -> Scope:
    free, hosts = whole_members(cluster, goal, start)
    # Waiting VMs the start already placed must stay placed: a tighter, equivalent model.
    waiting = set(pending(cluster))
    homeless = {vm for vm in waiting if start.get(vm) is None}
    return make_scope(cluster, free, hosts, start, homeless, set(must_leave(cluster, goal)))


def make_scope(
    cluster: Cluster,
    free: list[str],
    hosts: list[str],
    incumbent: Mapping[str, str | None],
    waiting: Collection[str],
    leaving: Collection[str],
) -> Scope:
    rules_of: dict[str, list[Rule]] = {}
    for rule in cluster.hard_rules:
        for vm in rule.vms:
            rules_of.setdefault(vm, []).append(rule)
    by_name = cluster.host_by_name
    candidates = {
        vm: [h for h in hosts if statically_allowed(cluster, vm, by_name[h], rules_of.get(vm, ()))]
        for vm in free
    }
    fallback = {vm: h for vm in free if vm in leaving and (h := cluster.vm_by_name[vm].host)}
    return Scope(
        free, hosts, candidates, dict(incumbent),
        may_be_unplaced=frozenset(vm for vm in free if vm in waiting),
        fallback_host=fallback,
    )  # fmt: skip
