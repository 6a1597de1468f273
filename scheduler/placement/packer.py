"""A placement state mirrored in numpy arrays, for heuristics that scan every host per VM:
the greedy starts, the HA reserve check and the watch that follows it through a plan.

Free capacity lives in a matrix (hosts x resources), so scanning 1,000 hosts for a VM costs
a few vector operations; the rules are only asked about the hosts that pass the capacity
test. ``place_pending`` is the best fit, largest first, that they all use: onto hosts
already running VMs before switching a new host on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from scheduler.model import Cluster, HostState
from scheduler.placement.ranking import (
    aligned,
    best_aligned,
    best_fit,
    free_share,
    ranked,
    with_room,
)
from scheduler.placement.state import PlacementState

Fit = str  # "best", "first" or "aligned" (see ``ranking``)


class Packer:
    """A placement state plus a matrix of free capacity (hosts x resources)."""

    def __init__(self, cluster: Cluster, placement: Mapping[str, str | None]) -> None:
        self.cluster = cluster
        self.state = PlacementState(cluster, placement)
        self.hosts = [h.name for h in cluster.hosts]
        self.index = {h: i for i, h in enumerate(self.hosts)}
        self.resources = list(cluster.resources)
        capacity = [[h.capacity.get(r, 0) for r in self.resources] for h in cluster.hosts]
        shape = (len(self.hosts), len(self.resources))  # also with no host at all
        self.capacity = np.array(capacity, dtype=np.int64).reshape(shape)
        self.scale = np.maximum(self.capacity.max(axis=0, initial=0), 1).astype(np.float64)
        # Column-major: ranking hosts reads one resource of every host at a time.
        self.free = np.array(self.capacity, order="F")  # a copy
        for i, host in enumerate(self.hosts):
            self.free[i] -= self._vector(self.state.load[host])
        self.share = free_share(self.free, self.scale)  # kept up to date by every move
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

    def _demand_share(self, vm: str) -> float:
        return float((self.demand(vm) / self.scale).sum())

    def move(self, vm: str, target: str) -> None:
        self.unplace(vm)
        self.state.add(vm, target)
        i = self.index[target]
        self.free[i] -= self.demand(vm)
        self.share[i] -= self._demand_share(vm)
        self.count[i] += 1

    def unplace(self, vm: str) -> None:
        source = self.state.host_of(vm)
        if source is not None:
            i = self.index[source]
            self.free[i] += self.demand(vm)
            self.share[i] += self._demand_share(vm)
            self.count[i] -= 1
            self.state.remove(vm, source)

    def choose(self, vm: str, allowed: np.ndarray, fit: Fit) -> str | None:
        """The host for ``vm`` among ``allowed`` (a boolean mask), or None. The rules are
        asked about the best host first; only if they refuse it are the hosts ranked."""
        vector, allowed = self.demand(vm), allowed & self.open
        if fit in ("best", "aligned"):
            if fit == "best":
                first = best_fit(self.free, vector, allowed, self.scale, self.share)
            else:
                first = best_aligned(self.free, vector, allowed, self.scale)
            if first is None:
                return None
            if self.state.rules_allow(vm, self.hosts[first]):
                return self.hosts[first]
            rank = ranked if fit == "best" else aligned
            candidates = rank(self.free, vector, allowed, self.scale)
        else:
            candidates = with_room(self.free, vector, allowed)
        for i in candidates.tolist():
            host: str = self.hosts[i]
            if self.state.rules_allow(vm, host):
                return host
        return None

    def can_take(self, vm: str, host: str) -> bool:
        """Is ``host`` open (not closed for a failure being tried), and does the placement
        state let it take ``vm``?"""
        return bool(self.open[self.index[host]]) and self.state.can_take(vm, host)

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


def largest_first(packer: Packer, vms: Iterable[str]) -> list[str]:
    """``vms`` largest first, equal sizes by name: a set's order (which changes from one
    process to the next) never decides, so that a plan repeats."""
    return sorted(sorted(vms), key=size_key(packer), reverse=True)


def place_pending(packer: Packer, vms: Iterable[str], fit: Fit = "best") -> list[str]:
    """Place ``vms`` largest first; returns those that found no host."""
    unplaced = []
    for vm in largest_first(packer, vms):
        active = packer.active_mask()
        host = packer.choose(vm, active, fit) or packer.choose(vm, ~active, fit)
        if host is None:
            unplaced.append(vm)
        else:
            packer.move(vm, host)
    return unplaced
