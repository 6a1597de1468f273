"""The HA reserve check: would the VMs of each failure restart on the hosts that survive?

A failure is a set of hosts going down together: any ``host_failures_to_tolerate`` hosts, or
every host of one failure domain (hosts sharing a label value, such as a rack). For each, the
failed hosts' VMs are re-placed best fit (those under rules first, then largest first) on the
surviving up hosts, with capacity and every hard rule honoured; the VMs that find no room are
*stranded*. A greedy
re-placement may strand a VM that a solver would have fitted, so the check errs on the safe
side: it can miss a reserve that exists, never report one that does not.

With many hosts and more than one failure to tolerate, the combinations explode; beyond
``MAX_COMBINATIONS`` only the combinations of the most loaded hosts are tried (losing those
strands the most) and the report says it was not exhaustive.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np

from scheduler.model import Cluster, HaPolicy, HostState, vms_by_host
from scheduler.placement.packer import Packer, place_pending, size_key

MAX_COMBINATIONS = 2000


@dataclass(frozen=True)
class Failure:
    name: str  # "kvm-03", "kvm-03+kvm-07" or "rack=r2"
    hosts: tuple[str, ...]
    vms: tuple[str, ...]  # the VMs that were running there
    stranded: tuple[str, ...]  # those that found no room on the survivors
    restarts: Mapping[str, str]  # where the others would restart
    extra_hosts: int  # at least this many more hosts (of the largest model) would cover them
    # Per resource, what the stranded VMs need beyond all the room left on the survivors;
    # all zero when the room is there in total but split over hosts too small for them.
    shortfall: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HaReport:
    policy: HaPolicy
    failures: tuple[Failure, ...]
    exhaustive: bool

    @property
    def satisfied(self) -> bool:
        return all(not f.stranded for f in self.failures)

    @property
    def worst(self) -> Failure | None:
        return max(self.failures, key=lambda f: (len(f.stranded), f.extra_hosts), default=None)


def check_ha(cluster: Cluster, policy: HaPolicy | None = None) -> HaReport:
    policy = policy or cluster.policy.ha
    cluster = as_failures_see_it(cluster)
    groups, exhaustive = failure_groups(cluster, policy)
    packer = Packer(cluster, cluster.current_placement)
    residents = vms_by_host(cluster.current_placement)
    failures = []
    for name, hosts in groups:
        vms = tuple(vm for host in hosts for vm in residents.get(host, ()))
        restarts, room_left = restart_elsewhere(packer, hosts, vms)
        stranded = tuple(sorted(vm for vm in vms if vm not in restarts))
        cover = _hosts_to_cover(packer, stranded)
        needed = sum(
            (packer.demand(vm) for vm in stranded), np.zeros(len(packer.resources), dtype=np.int64)
        )
        short = {
            r: int(max(0, n - f))
            for r, n, f in zip(packer.resources, needed, room_left, strict=True)
        }
        shortfall = {r: v for r, v in short.items() if v} if stranded else {}
        failures.append(Failure(name, hosts, vms, stranded, restarts, cover, shortfall))
    return HaReport(policy, tuple(failures), exhaustive)


def as_failures_see_it(cluster: Cluster) -> Cluster:
    """Without holds: they keep VMs in place for plans, but a failed host's VMs restart
    wherever they can."""
    if all(rule.binds_restarts for rule in cluster.rules):
        return cluster
    return replace(cluster, rules=tuple(r for r in cluster.rules if r.binds_restarts))


def failure_groups(
    cluster: Cluster, policy: HaPolicy
) -> tuple[list[tuple[str, tuple[str, ...]]], bool]:
    """The host sets to fail, and whether they cover every combination the policy names."""
    alive = [h.name for h in cluster.hosts if h.state is not HostState.DOWN]
    groups: list[tuple[str, tuple[str, ...]]] = []
    count = policy.host_failures_to_tolerate
    exhaustive = True
    if count:
        candidates = alive
        if math.comb(len(alive), count) > MAX_COMBINATIONS:
            exhaustive = False
            keep = count
            while math.comb(keep + 1, count) <= MAX_COMBINATIONS:
                keep += 1
            candidates = _most_loaded(cluster, alive)[:keep]
        for combo in itertools.combinations(candidates, count):
            groups.append(("+".join(combo), combo))
    label = policy.failure_domain
    if label:
        domains: dict[str, list[str]] = {}
        for host in cluster.hosts:
            if host.name in alive and label in host.labels:
                domains.setdefault(host.labels[label], []).append(host.name)
        groups.extend(
            (f"{label}={value}", tuple(hosts)) for value, hosts in sorted(domains.items())
        )
    return groups, exhaustive


def _most_loaded(cluster: Cluster, hosts: list[str]) -> list[str]:
    packer = Packer(cluster, cluster.current_placement)
    used = (packer.capacity - packer.free) / packer.scale
    share = {h: float(used[packer.index[h]].max()) for h in hosts}
    return sorted(hosts, key=lambda h: (-share[h], h))


@contextmanager
def lifted(packer: Packer, hosts: Sequence[str], vms: Sequence[str]) -> Iterator[None]:
    """``hosts`` closed and ``vms`` off their hosts while the block runs; afterwards every VM
    is back where it was and the hosts are open as before, whatever the block moved."""
    origin = {vm: packer.state.host_of(vm) for vm in vms}
    closed = np.array([packer.index[h] for h in hosts], dtype=np.int64)
    was_open = packer.open[closed].copy()
    packer.open[closed] = False
    for vm in vms:
        packer.unplace(vm)
    try:
        yield
    finally:
        for vm in vms:
            packer.unplace(vm)
            home = origin[vm]
            if home is not None:
                packer.move(vm, home)
        packer.open[closed] = was_open


def restart_elsewhere(
    packer: Packer, hosts: Sequence[str], vms: Sequence[str]
) -> tuple[dict[str, str], np.ndarray]:
    """Re-place ``vms`` with ``hosts`` closed; returns where each VM that found room went,
    and the room left on the open hosts per resource. The packer is left as it was found."""
    with lifted(packer, hosts, vms):
        # VMs under rules go first: a pinned VM has few places, a free one can take any.
        ruled = [vm for vm in vms if packer.state.rules_of.get(vm)]
        place_pending(packer, ruled)
        place_pending(packer, [vm for vm in vms if not packer.state.rules_of.get(vm)])
        placed = {vm: packer.state.host_of(vm) for vm in vms}
        room_left = np.maximum(packer.free[packer.open], 0).sum(axis=0)
        return {vm: host for vm, host in placed.items() if host is not None}, room_left


def _hosts_to_cover(packer: Packer, stranded: tuple[str, ...]) -> int:
    """Empty hosts of the largest model needed for ``stranded``, first fit decreasing on
    capacity alone (rules could ask for more)."""
    if not stranded:
        return 0
    largest = packer.capacity[int(np.argmax((packer.capacity / packer.scale).sum(axis=1)))]
    free: list[np.ndarray] = []
    for vm in sorted(stranded, key=size_key(packer), reverse=True):
        demand = packer.demand(vm)
        for room in free:
            if (room >= demand).all():
                room -= demand
                break
        else:
            free.append(largest - demand)
    return len(free)


def admit_within_reserve(
    cluster: Cluster, placement: Mapping[str, str | None]
) -> tuple[dict[str, str | None], dict[str, str]]:
    """Admission control: new VMs (no host in ``cluster``) keep their place in ``placement``
    only while the HA reserve holds; the lowest priority, then the largest, give theirs up
    first. Returns the admitted placement and, for each VM refused, why."""
    admitted = dict(placement)
    if not cluster.policy.ha.required:
        return admitted, {}
    new = [vm for vm, host in placement.items() if host and cluster.vm_by_name[vm].host is None]
    size = size_key(Packer(cluster, cluster.current_placement))
    new.sort(key=lambda vm: (cluster.vm_by_name[vm].priority, -size(vm), vm))
    refused: dict[str, str] = {}
    already = check_ha(cluster.moved_to({vm: None for vm in new})).worst
    if already is not None and already.stranded:  # broken before any new VM: admit none
        why = f"the HA reserve does not hold already (losing {already.name} strands VMs)"
        return admitted | {vm: None for vm in new}, {vm: f"{vm}: {why}" for vm in new}
    while new:
        report = check_ha(cluster.moved_to(admitted))
        worst = report.worst
        if report.satisfied or worst is None:
            break
        vm = new.pop(0)
        admitted[vm] = None
        refused[vm] = (
            f"{vm}: placing it would break the HA reserve (losing {worst.name} would strand "
            f"{len(worst.stranded)} VMs)"
        )
    return admitted, refused
