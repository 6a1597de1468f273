"""An independent checker of plans. It uses no solver and none of the planner's bookkeeping:
it replays the plan wave by wave from the snapshot, keeping its own record of where each VM
is present, and reports every violation it sees.

In a wave, each moving VM is present on its source and its destination at once. Checked at
every wave: the move starts where the VM is, the destination is up, capacity on every host
touched, every hard rule (on presence), max_parallel and max_parallel_per_host. Checked at
the end: the placement reached is the plan's placement, capacity and hard rules everywhere.

A hard rule already broken before a wave (a rule added after its VMs were placed, a repair
in several waves) may stay broken through it, with no more violations than before; a rule
that held must hold. At the end, likewise against the snapshot: a plan never breaks a rule
nor makes a broken one worse (ending every violation is the goals' work, not a safety
matter).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence

from scheduler.model import Cluster, HostState
from scheduler.planning.waves import Move, Plan
from scheduler.rules import Rule


class _Presence:
    """Where each VM is present; the view the rules' ``violations`` read. A wave adds its
    movers' destinations on top of where VMs are, without copying the whole record."""

    def __init__(self, location: Mapping[str, str | None], arriving: Mapping[str, str]) -> None:
        self.location, self.arriving = location, arriving

    def hosts_of(self, vm: str) -> Collection[str]:
        here = self.location.get(vm)
        hosts = {here} if here else set()
        if vm in self.arriving:
            hosts.add(self.arriving[vm])
        return hosts

    def vms_on(self, host: str) -> Collection[str]:
        return [vm for vm in self.location if host in self.hosts_of(vm)]


def _running(cluster: Cluster) -> dict[str, str | None]:
    """Where each VM runs in the snapshot (the VMs of a host that is down run nowhere)."""
    hosts = cluster.host_by_name
    return {
        v.name: (v.host if v.host and hosts[v.host].state is not HostState.DOWN else None)
        for v in cluster.vms
    }


def check_plan(cluster: Cluster, plan: Plan) -> list[str]:
    location = _running(cluster)
    hard = cluster.hard_rules
    residents: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
    for vm, host in location.items():
        if host is not None:
            residents[host].add(vm)
    problems: list[str] = []
    for number, wave in enumerate(plan.waves, start=1):
        found = _check_wave(cluster, location, residents, wave, hard)
        problems += [f"wave {number}: {p}" for p in found]
        for move in wave:
            previous = location.get(move.vm)
            if previous is not None:
                residents[previous].discard(move.vm)
            location[move.vm] = move.target
            residents.setdefault(move.target, set()).add(move.vm)
    problems += _check_final(cluster, location, plan, hard)
    return problems


def _check_wave(
    cluster: Cluster,
    location: Mapping[str, str | None],
    residents: Mapping[str, set[str]],
    wave: Iterable[Move],
    hard: Sequence[Rule],
) -> list[str]:
    problems = []
    arriving: dict[str, str] = {}
    presence = _Presence(location, arriving)
    moving: set[str] = set()
    per_host: Counter[str] = Counter()
    moves = list(wave)
    if len(moves) > cluster.limits.max_parallel:
        problems.append(
            f"{len(moves)} moves at once, max_parallel is {cluster.limits.max_parallel}"
        )
    for move in moves:
        vm, source, target = move.vm, move.source, move.target
        if vm not in cluster.vm_by_name:
            problems.append(f"unknown VM {vm}")
            continue
        if vm in moving:
            problems.append(f"{vm} moves twice in one wave")
        moving.add(vm)
        if location.get(vm) != source:
            problems.append(f"{vm} should leave {source} but is on {location.get(vm)}")
        host = cluster.host_by_name.get(target)
        if host is None or host.state is not HostState.UP:
            problems.append(f"{vm} goes to {target}, which is not up")
        per_host.update(h for h in (source, target) if h is not None)
        arriving[vm] = target
    limit = cluster.limits.max_parallel_per_host
    problems += [
        f"{h} in {n} moves at once, max_parallel_per_host is {limit}"
        for h, n in per_host.items()
        if n > limit
    ]
    touched = {m.target for m in moves}
    there = set(arriving).union(*(residents.get(h, set()) for h in touched))
    problems += _capacity(cluster, presence, touched, there)
    before = _Presence(location, {})
    problems += [
        v
        for rule in hard
        if moving.intersection(rule.vms)
        for v in _worse(cluster, rule, before, presence)
    ]
    return problems


def _worse(cluster: Cluster, rule: Rule, before: _Presence, after: _Presence) -> list[str]:
    """The rule's violations in ``after`` if it held in ``before`` or has more of them now."""
    broken = rule.violations(cluster, after)
    if not broken:
        return []
    was = rule.violations(cluster, before)
    return broken if not was or len(broken) > len(was) else []


def _capacity(
    cluster: Cluster, presence: _Presence, hosts: Iterable[str], vms: Iterable[str]
) -> list[str]:
    """Demand present on each of ``hosts`` (``vms`` lists every VM that may be there)."""
    problems = []
    wanted = set(hosts)
    used: dict[str, Counter[str]] = {h: Counter() for h in wanted}
    for vm in vms:
        for host in set(presence.hosts_of(vm)) & wanted:
            used[host].update(cluster.vm_by_name[vm].demand)
    for host in sorted(wanted):
        capacity = cluster.host_by_name[host].capacity if host in cluster.host_by_name else {}
        for resource, amount in sorted(used[host].items()):
            if amount > capacity.get(resource, 0):
                problems.append(
                    f"{host} over capacity: {resource} {amount} > {capacity.get(resource, 0)}"
                )
    return problems


def _check_final(
    cluster: Cluster, location: Mapping[str, str | None], plan: Plan, hard: Sequence[Rule]
) -> list[str]:
    problems = []
    for vm, host in plan.placement.items():
        if location.get(vm) != host and vm in cluster.vm_by_name:
            problems.append(f"end: {vm} is on {location.get(vm)}, plan says {host}")
    presence = _Presence(location, {})
    everywhere = set(cluster.host_by_name)
    problems += [f"end: {p}" for p in _capacity(cluster, presence, everywhere, location)]
    start = _Presence(_running(cluster), {})
    problems += [f"end: {v}" for rule in hard for v in _worse(cluster, rule, start, presence)]
    return problems


def stranded(cluster: Cluster, placement: Mapping[str, str | None]) -> list[str]:
    """VMs the plan leaves without a host or on a host that is not up (not a safety issue,
    but a goal that was not reached)."""
    hosts = cluster.host_by_name
    return sorted(
        vm for vm, h in placement.items() if h is None or hosts[h].state is not HostState.UP
    )


def check_placement(cluster: Cluster, placement: Mapping[str, str | None]) -> list[str]:
    """Capacity and hard rules of a placement at rest, and every placed VM on an up host."""
    hard = cluster.hard_rules
    presence = _Presence(placement, {})
    problems = [
        f"{vm} is on {host}, which is {cluster.host_by_name[host].state.value}"
        for vm, host in sorted(placement.items())
        if host is not None and not cluster.host_by_name[host].accepts_vms
    ]
    problems += _capacity(cluster, presence, cluster.host_by_name, placement)
    problems += [v for rule in hard for v in rule.violations(cluster, presence)]
    return problems
