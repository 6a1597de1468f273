"""Lower bounds that need no solver: on active hosts, and on moves for a given host count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator

import numpy as np

from scheduler.model import Cluster, HostState


def active_hosts_lower_bound(cluster: Cluster, vms: Collection[str] | None = None) -> int:
    """Fewest hosts that could hold ``vms`` (default: all VMs), from three arguments:

    - volume: per resource, the fewest of the largest usable hosts whose capacities add up
      to the total demand;
    - large VMs: per resource, VMs needing more than half of the largest host can never
      share a host with each other;
    - anti-affinity: a hard group of k VMs needs k hosts.
    """
    names = list(vms) if vms is not None else [v.name for v in cluster.vms]
    if not names:
        return 0
    usable = [h for h in cluster.hosts if h.accepts_vms]
    demand = [cluster.vm_by_name[n].demand for n in names]
    bound = 1
    for resource in cluster.resources:
        total = sum(d.get(resource, 0) for d in demand)
        if total == 0:
            continue
        capacities = sorted((h.capacity.get(resource, 0) for h in usable), reverse=True)
        running = np.cumsum(capacities) if capacities else np.zeros(1)
        # The first k whose capacities add up to the demand; more hosts than exist if none.
        needed = int(np.searchsorted(running, total)) + 1
        bound = max(bound, needed)
        if capacities:
            half = capacities[0] / 2
            bound = max(bound, sum(1 for d in demand if d.get(resource, 0) > half))
    wanted = set(names)
    for rule in cluster.hard_rules:
        bound = max(bound, rule.min_hosts(wanted))
    return bound


def moves_lower_bound(
    cluster: Cluster, hosts_after: int, placed: Collection[str] | None = None
) -> int:
    """Fewest moves that end with ``hosts_after`` active hosts, holding ``placed`` (default:
    every VM). Every VM on a host left out of the active ones moves, and the hosts kept must
    have room for the demand of every placed VM, resource by resource. So the bound is the
    fewest VMs on the hosts left out, over the choices of kept hosts whose capacities cover
    that demand: within one host model the hosts holding most VMs are kept first, and the
    choice is how many of each model to keep (models beyond what can be tried are merged into
    one that has the largest capacities of each, which only lowers the bound)."""
    staying = {v.name for v in cluster.vms} if placed is None else set(placed)
    resources = list(cluster.resources)
    demand = np.zeros(len(resources))
    loads: dict[str, np.ndarray] = {}
    counts: Counter[str] = Counter()
    for vm in cluster.vms:
        if vm.name not in staying:
            continue
        row = np.array([vm.demand.get(r, 0) for r in resources], dtype=float)
        demand += row
        if vm.host is None:
            continue
        loads[vm.host] = loads.get(vm.host, 0) + row
        if cluster.host_by_name[vm.host].state is not HostState.DOWN:
            counts[vm.host] += 1  # a restart after a host died is not a move
    models: dict[tuple[float, ...], list[int]] = {}
    for host in cluster.hosts:
        load = loads.get(host.name, np.zeros(len(resources)))
        if host.accepts_vms:  # may keep an overload it already has, but take nothing more
            room = np.maximum([host.capacity.get(r, 0) for r in resources], load)
        else:
            room = load  # may keep what it holds, nothing more
        models.setdefault(tuple(room), []).append(counts[host.name])
    groups = [(np.array(room), sorted(n, reverse=True)) for room, n in models.items()]
    kept = _most_vms_kept(_merged(groups), demand, hosts_after)
    total = sum(counts.values())
    if kept is None:  # no choice of hosts has room: count the lightest hosts alone
        emptied = max(0, sum(1 for n in counts.values() if n) - hosts_after)
        return sum(sorted(n for n in counts.values() if n)[:emptied])
    return total - kept


Group = tuple[np.ndarray, list[int]]  # (capacities, VMs per host, most first)
_CHOICES = 20_000_000  # combinations of per-model host counts tried at most


def _merged(groups: list[Group]) -> list[Group]:
    """Fewer groups, by merging the two whose capacities are closest, until the choices of
    how many hosts to keep of each (the largest group's count follows) are few enough."""
    groups = sorted(groups, key=lambda g: len(g[1]), reverse=True)
    scale = np.maximum(np.max([room for room, _ in groups], axis=0), 1)
    while len(groups) > 1 and np.prod([len(n) + 1.0 for _, n in groups[1:]]) > _CHOICES:
        pairs = [(a, b) for a in range(len(groups)) for b in range(a + 1, len(groups))]
        a, b = min(pairs, key=lambda p: np.abs(groups[p[0]][0] - groups[p[1]][0]) @ (1 / scale))
        room = np.maximum(groups[a][0], groups[b][0])
        merged = (room, sorted(groups[a][1] + groups[b][1], reverse=True))
        groups = sorted(
            [g for i, g in enumerate(groups) if i not in (a, b)] + [merged],
            key=lambda g: len(g[1]),
            reverse=True,
        )
    return groups


def _most_vms_kept(groups: list[Group], demand: np.ndarray, hosts: int) -> int | None:
    """The most VMs on at most ``hosts`` hosts whose capacities add up to ``demand``: every
    count of kept hosts per group is tried, the largest group taking whatever is left."""
    (last_room, last), others = groups[0], groups[1:]
    rooms = np.array([room for room, _ in others]).reshape(len(others), len(demand))
    kept_by_count = [np.concatenate([[0], np.cumsum(n)]).astype(int) for _, n in others]
    last_kept = np.concatenate([[0], np.cumsum(last)]).astype(int)
    best: int | None = None
    for chosen in _choices([len(n) + 1 for _, n in others]):
        used = chosen.sum(axis=1)
        take = np.clip(hosts - used, 0, len(last))
        room = np.outer(take, last_room) + chosen @ rooms
        kept = last_kept[take] + sum(
            (k[chosen[:, i]] for i, k in enumerate(kept_by_count)), np.zeros(len(chosen), int)
        )
        fits = (used <= hosts) & (room >= demand).all(axis=1)
        if fits.any():
            found = int(kept[fits].max())
            best = found if best is None else max(best, found)
    return best


def _choices(sizes: list[int]) -> Iterator[np.ndarray]:
    """Every combination of counts below ``sizes``, as rows, a slice of the first at a time
    so that memory stays at the product of the others."""
    grid = np.meshgrid(*[np.arange(s) for s in sizes[1:]], indexing="ij")
    tail = np.stack([g.ravel() for g in grid], axis=1) if grid else np.zeros((1, 0), int)
    if not sizes:
        yield tail
        return
    for first in range(sizes[0]):
        yield np.hstack([np.full((len(tail), 1), first), tail])
