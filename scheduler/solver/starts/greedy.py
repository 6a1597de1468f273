"""Greedy heuristics: the solver's starting point (hint) and the baselines of the benchmarks.

- ``place_pending``: best fit of waiting VMs, largest first, onto hosts already running VMs
  before switching a new host on.
- ``empty_hosts``: visit hosts in a given order and move all VMs of a host elsewhere if
  they all fit; otherwise leave the host untouched. Ordered by fewest VMs and fitted best-fit
  it is vmpack's start; ordered by load and fitted first-fit it is the classic
  keep-in-place baseline.
- ``first_fit_decreasing``: pack every VM from scratch, ignoring where it runs now.

Free capacity lives in a numpy matrix so that scanning 1,000 hosts for a VM costs a few
vector operations; the rules are only asked about the hosts that pass the capacity test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from scheduler.model import Cluster, HostState
from scheduler.placement.state import PlacementState, statically_allowed

Fit = str  # "best" or "first"


class Packer:
    """A placement state plus a matrix of free capacity (hosts x resources)."""

    def __init__(self, cluster: Cluster, placement: Mapping[str, str | None]) -> None:
        self.cluster = cluster
        self.state = PlacementState(cluster, placement)
        self.hosts = [h.name for h in cluster.hosts]
        self.index = {h: i for i, h in enumerate(self.hosts)}
        self.resources = list(cluster.resources)
        capacity = [[h.capacity.get(r, 0) for r in self.resources] for h in cluster.hosts]
        self.capacity = np.array(capacity, dtype=np.int64)
        self.scale = np.maximum(self.capacity.max(axis=0), 1).astype(np.float64)
        self.free = self.capacity.copy()
        for i, host in enumerate(self.hosts):
            self.free[i] -= self._vector(self.state.load[host])
        self.open = np.array([h.state is HostState.UP for h in cluster.hosts])
        # VMs per host, so that telling active hosts from empty ones is one comparison.
        self.count = np.array([len(self.state.residents[h]) for h in self.hosts])
        self._demands: dict[str, np.ndarray] = {}

    def _vector(self, amounts: Mapping[str, int]) -> np.ndarray:
        return np.array([amounts.get(r, 0) for r in self.resources], dtype=np.int64)

    def demand(self, vm: str) -> np.ndarray:
        """The VM's demand as a vector (shared and read-only)."""
        vector = self._demands.get(vm)
        if vector is None:
            vector = self._vector(self.cluster.vm_by_name[vm].demand)
            vector.flags.writeable = False
            self._demands[vm] = vector
        return vector

    def move(self, vm: str, target: str) -> None:
        self.unplace(vm)
        self.state.add(vm, target)
        i = self.index[target]
        self.free[i] -= self.demand(vm)
        self.count[i] += 1

    def unplace(self, vm: str) -> None:
        source = self.state.host_of(vm)
        if source is not None:
            i = self.index[source]
            self.free[i] += self.demand(vm)
            self.count[i] -= 1
            self.state.remove(vm, source)

    def choose(self, vm: str, allowed: np.ndarray, fit: Fit) -> str | None:
        """The host for ``vm`` among ``allowed`` (a boolean mask), or None."""
        vector = self.demand(vm)
        mask = allowed & self.open & (self.free >= vector).all(axis=1)
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return None
        if fit == "best":
            slack = ((self.free[candidates] - vector) / self.scale).sum(axis=1)
            candidates = candidates[np.argsort(slack, kind="stable")]
        for i in candidates:
            host = self.hosts[i]
            if self._rules_allow(vm, host):
                return host
        return None

    def can_take(self, vm: str, host: str) -> bool:
        """Is ``host`` open, with room for ``vm``, and do the rules allow it there?"""
        i = self.index[host]
        return (
            bool(self.open[i])
            and bool((self.free[i] >= self.demand(vm)).all())
            and self._rules_allow(vm, host)
        )

    def _rules_allow(self, vm: str, host: str) -> bool:
        rules = self.state.rules_of.get(vm, ())
        allowed = statically_allowed(self.cluster, vm, self.cluster.host_by_name[host], rules)
        return allowed and self.state.rules_admit(vm, host)

    def active_mask(self) -> np.ndarray:
        return self.count > 0


def size_key(packer: Packer, measure: str = "max") -> Callable[[str], float]:
    """A VM's size relative to the largest host: its largest share ("max"), the sum of its
    shares ("sum") or their Euclidean norm ("l2")."""

    def key(vm: str) -> float:
        shares = packer.demand(vm) / packer.scale
        if measure == "sum":
            return float(shares.sum())
        if measure == "l2":
            return float(np.sqrt((shares * shares).sum()))
        return float(shares.max())

    return key


def place_pending(packer: Packer, vms: Iterable[str], fit: Fit = "best") -> list[str]:
    """Place ``vms`` largest first; returns those that found no host."""
    unplaced = []
    for vm in sorted(vms, key=size_key(packer), reverse=True):
        active = packer.active_mask()
        host = packer.choose(vm, active, fit) or packer.choose(vm, ~active, fit)
        if host is None:
            unplaced.append(vm)
        else:
            packer.move(vm, host)
    return unplaced


def relieve_overloads(packer: Packer) -> list[tuple[str, str]]:
    """Take VMs off hosts that hold more than their capacity (demand grew under them or the
    capacity shrank), smallest first, until each fits; returns (VM, host it left)."""
    taken: list[tuple[str, str]] = []
    for i in np.flatnonzero((packer.free < 0).any(axis=1)):
        host = packer.hosts[i]
        over = packer.free[i] < 0
        for vm in sorted(packer.state.residents[host], key=size_key(packer)):
            if (packer.free[i] >= 0).all():
                break
            if (packer.demand(vm)[over] > 0).any():
                packer.unplace(vm)
                taken.append((vm, host))
    return taken


def empty_hosts(
    packer: Packer, order: Sequence[str], fit: Fit, max_moves: int | None = None
) -> list[str]:
    """Try to empty each host of ``order`` in turn, within ``max_moves`` migrations;
    returns the hosts emptied."""
    budget = max_moves if max_moves is not None else len(packer.state.presence)
    closed = np.zeros(len(packer.hosts), dtype=bool)  # emptied hosts receive nothing more
    emptied = []
    for host in order:
        residents = sorted(packer.state.residents[host], key=size_key(packer), reverse=True)
        if not residents or len(residents) > budget:
            continue
        i = packer.index[host]
        closed[i] = True
        receivers = packer.active_mask() & ~closed
        done: list[str] = []
        for vm in residents:
            target = packer.choose(vm, receivers, fit)
            if target is None:
                break
            packer.move(vm, target)
            done.append(vm)
        if len(done) == len(residents):
            emptied.append(host)
            budget -= len(done)
            continue
        for vm in done:  # roll back: this host stays as it was
            packer.move(vm, host)
        closed[i] = False
    return emptied


def fewest_vms_first(packer: Packer) -> list[str]:
    """Hosts by number of VMs, then by load: the cheapest hosts to empty first."""

    def key(host: str) -> tuple[int, float]:
        i = packer.index[host]
        used = ((packer.capacity[i] - packer.free[i]) / packer.scale).sum()
        return len(packer.state.residents[host]), float(used)

    return sorted((h for h in packer.hosts if packer.state.residents[h]), key=key)


def least_loaded_first(packer: Packer) -> list[str]:
    def key(host: str) -> float:
        i = packer.index[host]
        return float(
            ((packer.capacity[i] - packer.free[i]) / np.maximum(packer.capacity[i], 1)).max()
        )

    return sorted((h for h in packer.hosts if packer.state.residents[h]), key=key)


def keep_in_place_baseline(cluster: Cluster) -> dict[str, str | None]:
    """The classic heuristic: empty the least-loaded hosts first, first-fit their VMs onto
    the other active hosts, keep everything else where it is."""
    packer = Packer(cluster, cluster.current_placement)
    place_pending(packer, [v.name for v in cluster.vms if v.host is None], fit="first")
    empty_hosts(packer, least_loaded_first(packer), fit="first")
    return packer.state.placement()


def first_fit_decreasing(
    cluster: Cluster, fit: Fit = "first", measure: str = "max"
) -> dict[str, str | None]:
    """Pack every VM from scratch onto the usable hosts, largest first by ``measure``."""
    packer = Packer(cluster, {v.name: None for v in cluster.vms})
    everything = np.ones(len(packer.hosts), dtype=bool)
    for vm in sorted(packer.state.presence, key=size_key(packer, measure), reverse=True):
        active = packer.active_mask()
        host = packer.choose(vm, active, fit) or packer.choose(vm, everything & ~active, "first")
        if host is not None:
            packer.move(vm, host)
    return packer.state.placement()
