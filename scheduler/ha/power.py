"""Host power: which hosts a placement leaves empty that can be powered off, never below the
HA reserve.

Without a reserve every empty up host may go off. With one, powered-off hosts cannot take
restarted VMs, so some empty hosts may have to stay on: the largest ones are kept (they absorb
the most), taken from one failure domain after another (a host kept for a rack's failure must
not be in that rack), and the fewest that keep the reserve are found by bisection on how many
stay on, each candidate checked with the HA check (more hosts on never strands more VMs, up
to the greedy re-placement's ties). The answer is checked once more as a whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

from scheduler.ha.reserve import check_ha
from scheduler.model import Cluster, Host, HostState, vms_by_host

CORE = ("vcpus", "memory_mib")


@dataclass(frozen=True)
class PowerAdvice:
    power_off: tuple[str, ...]  # empty hosts that may go off
    kept_for_reserve: tuple[str, ...]  # empty hosts that must stay on for the HA reserve
    reserve_holds: bool  # False: even with every empty host on, the reserve does not hold
    reserve_held_before: bool = True  # in the snapshot the plan starts from


def power_advice(cluster: Cluster, placement: Mapping[str, str | None]) -> PowerAdvice:
    residents = vms_by_host(placement)
    empty = [h for h in cluster.hosts if h.accepts_vms and not residents.get(h.name)]
    if not cluster.policy.ha.required:
        return PowerAdvice(tuple(h.name for h in empty), (), True)
    before = check_ha(cluster).satisfied
    names = [h.name for h in _reserve_order(cluster, empty)]
    target = cluster.moved_to(placement)

    def holds(kept_on: int) -> bool:
        return check_ha(_powered_off(target, names[kept_on:])).satisfied

    if not holds(len(names)):
        return PowerAdvice((), tuple(names), False, before)
    low, high = 0, len(names)  # the fewest hosts kept on lies in [low, high]
    while low < high:
        middle = (low + high) // 2
        if holds(middle):
            high = middle
        else:
            low = middle + 1
    return PowerAdvice(tuple(sorted(names[low:])), tuple(sorted(names[:low])), True, before)


def _reserve_order(cluster: Cluster, empty: list[Host]) -> list[Host]:
    """The empty hosts in the order they are kept on: the largest first and, among hosts of
    one size, one failure domain after another, so that the hosts kept on for a domain's
    failure are not in that domain."""
    largest = {r: max((h.capacity.get(r, 0) for h in cluster.hosts), default=0) or 1 for r in CORE}
    label = cluster.policy.ha.failure_domain
    seen: Counter[tuple[float, str | None]] = Counter()
    order = []
    for h in sorted(empty, key=lambda h: (-_size(h, largest), h.name)):
        domain = h.labels.get(label) if label is not None else None
        rank = seen[_size(h, largest), domain]  # the how-manyth of its size in its domain
        seen[_size(h, largest), domain] += 1
        order.append((-_size(h, largest), rank, h.name, h))
    return [h for *_, h in sorted(order, key=lambda item: item[:3])]


def _size(host: Host, largest: Mapping[str, int]) -> float:
    return round(sum(host.capacity.get(r, 0) / largest[r] for r in CORE), 9)


def _powered_off(cluster: Cluster, hosts: list[str]) -> Cluster:
    """Powered-off hosts neither fail nor take restarted VMs: down, as far as HA is concerned."""
    off = set(hosts)
    return cluster.replace_hosts(
        replace(h, state=HostState.DOWN) if h.name in off else h for h in cluster.hosts
    )
