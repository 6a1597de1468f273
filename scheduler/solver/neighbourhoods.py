"""The parts of a placement the neighbourhood search frees at each step, and the incumbent
they are drawn from.

- ``closing``: one or two hosts cheap to empty (few VMs), plus receivers with room; hosts
  that resisted closing are drawn less often (consolidation). Balance takes the most and
  the least utilised hosts; placing and evacuating, hosts with room around the VMs that
  have no host yet.
- ``homecoming``: an active host whose own VMs the incumbent sends elsewhere, with the hosts
  that hold them, so that the sub-model can bring them home by moving others aside.
- ``reopening``: a host the incumbent empties that held many VMs, and an active host where
  few of its own VMs stay; freeing the first's VMs and the second's residents lets the
  sub-model keep the first and empty the second instead, on as many hosts with fewer
  moves. The searches for hosts choose which hosts to empty by load, not by VMs moved.

Each returns a ``Neighbourhood``, or None when it has nothing to offer.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np

from scheduler.model import Cluster, Goal, add_into

PICK_AMONG = 8  # the neighbourhood's first host is drawn among this many of the best


@dataclass(frozen=True)
class Neighbourhood:
    hosts: list[str]  # the hosts of the sub-model
    focus: list[str]  # the hosts it is meant to empty (told apart when they resist)
    free: list[str] | None = None  # the VMs it frees; None: every VM of its hosts


class Incumbent:
    """The best placement so far with its residents, loads and moved VMs per host, updated
    VM by VM when a sub-model improves it: each step reads them, and recounting 10,000 VMs
    per step cost more than the solve."""

    def __init__(self, cluster: Cluster, placement: Mapping[str, str | None]) -> None:
        self.cluster = cluster
        self.placement = dict(placement)
        self.residents: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
        self.loads: dict[str, dict[str, int]] = {h.name: {} for h in cluster.hosts}
        self.homeless: set[str] = set()
        # host -> its VMs that the incumbent moves elsewhere: the moves that may be undone
        self.exiles: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
        self.home = {v.name: v.host for v in cluster.vms}
        self.own = Counter(self.home.values())  # VMs that run on each host now
        for vm, host in self.placement.items():
            self._add(vm, host)

    def _add(self, vm: str, host: str | None, sign: int = 1) -> None:
        home = self.home[vm]
        if home is not None and home != host and home in self.exiles:
            (self.exiles[home].add if sign > 0 else self.exiles[home].discard)(vm)
        if host is None:
            (self.homeless.add if sign > 0 else self.homeless.discard)(vm)
            return
        (self.residents[host].add if sign > 0 else self.residents[host].discard)(vm)
        add_into(self.loads[host], self.cluster.vm_by_name[vm].demand, sign)

    def staying(self, host: str) -> int:
        """The host's own VMs that the incumbent leaves on it."""
        return self.own[host] - len(self.exiles[host])

    def differs(self, candidate: Mapping[str, str | None], free: Collection[str]) -> bool:
        return any(candidate.get(vm) != self.placement[vm] for vm in free)

    def take(self, candidate: Mapping[str, str | None], free: Collection[str]) -> None:
        """Adopt ``candidate``, which differs from the incumbent only on ``free`` VMs."""
        for vm in free:
            old, new = self.placement[vm], candidate.get(vm)
            if old != new:
                self._add(vm, old, -1)
                self._add(vm, new)
                self.placement[vm] = new


def homecoming(
    incumbent: Incumbent, usable: list[str], rng: random.Random, budget: int
) -> Neighbourhood | None:
    residents = incumbent.residents
    away = [h for h in usable if incumbent.exiles[h] and residents[h]]
    if not away:
        return None
    away.sort(key=lambda h: len(incumbent.exiles[h]), reverse=True)
    home = rng.choice(away[:PICK_AMONG])
    hosts, count = [home], len(residents[home])
    for holder in _holders(incumbent, home):
        if count >= budget:
            break
        hosts.append(holder)
        count += len(residents[holder])
    return Neighbourhood(hosts, [])  # a failure here says nothing about closing the host


def reopening(
    incumbent: Incumbent, usable: list[str], rng: random.Random, budget: int
) -> Neighbourhood | None:
    residents, exiles = incumbent.residents, incumbent.exiles
    emptied = [h for h in usable if exiles[h] and not residents[h]]
    if not emptied:
        return None
    emptied.sort(key=lambda h: len(exiles[h]), reverse=True)
    reopened = rng.choice(emptied[:PICK_AMONG])
    lighter = [h for h in usable if residents[h] and incumbent.staying(h) < len(exiles[reopened])]
    if not lighter:
        return None
    lighter.sort(key=lambda h: (incumbent.staying(h), len(residents[h])))
    closed = rng.choice(lighter[:PICK_AMONG])
    free = list(dict.fromkeys(sorted(exiles[reopened]) + sorted(residents[closed])))
    hosts = [reopened, closed]
    for holder in _holders(incumbent, reopened):
        if len(hosts) >= budget // 4:  # each holder adds a variable per VM freed
            break
        if holder != closed:
            hosts.append(holder)
    return Neighbourhood(hosts, [], free)


def _holders(incumbent: Incumbent, home: str) -> list[str]:
    """The hosts that accept VMs and hold ``home``'s moved VMs, those holding the most
    first."""
    hosts = incumbent.cluster.host_by_name
    holders = Counter(incumbent.placement[vm] for vm in incumbent.exiles[home])
    ranked = sorted(holders.items(), key=lambda item: (-item[1], str(item[0])))
    return [h for h, _ in ranked if h is not None and hosts[h].accepts_vms]


def closing(
    cluster: Cluster,
    goal: Goal,
    incumbent: Incumbent,
    usable: list[str],
    rng: random.Random,
    resisted: Counter[str],
    budget: int,
) -> Neighbourhood:
    residents = incumbent.residents
    active = [h for h in usable if residents[h]]
    free_share = _free_share(cluster, incumbent.loads, usable)
    if goal is Goal.CONSOLIDATE and active:
        ranked = sorted(active, key=lambda h: (resisted[h], len(residents[h]), -free_share[h]))
        focus = rng.sample(
            ranked[: min(PICK_AMONG, len(ranked))], k=min(len(ranked), rng.choice((1, 1, 2)))
        )
        pool = [h for h in active if h not in focus]
        weights = [free_share[h] + 0.01 for h in pool]
    elif goal is Goal.BALANCE and active:
        ranked = sorted(active, key=lambda h: free_share[h])
        k = max(1, min(len(ranked) // 4, 6))
        focus = ranked[:k] + ranked[-k:]
        pool = [h for h in active if h not in focus]
        weights = [1.0] * len(pool)
    else:
        focus = []
        pool = list(usable)
        weights = [free_share[h] + 0.01 for h in pool]
    hosts = list(dict.fromkeys(focus))
    count = sum(len(residents[h]) for h in hosts)
    for host in _weighted_order(pool, weights, rng):
        if count >= budget and len(hosts) >= 2:
            break
        hosts.append(host)
        count += len(residents[host])
    return Neighbourhood(hosts, focus)


def free_vms(
    incumbent: Incumbent,
    neighbourhood: Neighbourhood,
    movable: set[str],
    groups: Mapping[str, tuple[str, ...]],
    rng: random.Random,
    budget: int,
) -> list[str]:
    """The VMs the sub-model may move: the neighbourhood's, and some that have no host."""
    if neighbourhood.free is not None:
        free = [vm for vm in neighbourhood.free if vm in movable]
    else:
        free = [
            vm for h in neighbourhood.hosts for vm in sorted(incumbent.residents[h])
            if vm in movable
        ]  # fmt: skip
        homeless = sorted(vm for vm in incumbent.homeless if vm in movable)
        free += rng.sample(homeless, min(len(homeless), max(1, budget // 4)))
    # An affinity group is free only as a whole, and only if all of it is inside.
    chosen = set(free)
    return [vm for vm in free if all(m in chosen for m in groups.get(vm, (vm,)))]


def _weighted_order(pool: list[str], weights: list[float], rng: random.Random) -> list[str]:
    if not pool:
        return []
    keys = np.array([rng.random() ** (1.0 / max(w, 0.01)) for w in weights])  # weighted order
    return [pool[i] for i in np.argsort(-keys)]


def _free_share(
    cluster: Cluster, loads: Mapping[str, Mapping[str, int]], usable: list[str]
) -> dict[str, float]:
    """Per host, the smallest free fraction over its resources (room for one more VM)."""
    share = {}
    for host in usable:
        capacity = cluster.host_by_name[host].capacity
        share[host] = min(
            (1 - loads[host].get(r, 0) / c for r, c in capacity.items() if c > 0), default=0.0
        )
    return share
