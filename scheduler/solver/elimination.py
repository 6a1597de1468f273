"""Closing hosts one at a time: a tabu search with ejections, after the consistent
neighbourhood search of Buljubašić & Vasquez for vector packing (Comput. Oper. Res. 2016).

From a packing on m hosts, close the three least-loaded hosts and put their VMs in a pool.
Then, step by step, bring pool VMs back onto open hosts:

- a *swap* brings one or two pool VMs onto a host and ejects at most two of its VMs into the
  pool, when that packs more (the pool's total size shrinks);
- when no swap packs more, a *tabu move* inserts one pool VM and ejects the cheapest VMs
  that make room, even if the pool grows; a VM costs the square of its size, so large VMs
  get packed and the pool holds small ones, which fit anywhere later;
- an ejected VM may not return to that host for a few steps (the tabu list), which keeps
  the search from undoing its own moves.

When the pool has not shrunk for a while, an exact repack (``repack.py``, CP-SAT) looks at
the pool and a few roomy hosts at once, which single moves cannot.

As soon as the pool fits on two of the three closed hosts, a packing on m - 1 hosts is
found, and the next hosts are closed. The search stops at a lower bound, a deadline, a
number of steps (which makes it repeatable), or when the pool has not shrunk for long.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np

from scheduler.solver.repack import repack

CLOSED = 3  # hosts emptied at once; the pool must fit on all but one of them
TENURE = (10, 30)  # steps an ejected VM stays away from its host, drawn at random
SWAP_PAIRS = 12  # pairs of pool VMs tried together per step
STALL_STEPS = 500  # give up on these closed hosts after this many steps without progress
PENALTY_GROWTH = 1.02  # each step in the pool makes a VM dearer to eject again
MAX_FAILURES = 30  # closing tries in a row that may fail before the search stops
REPACK_AFTER = 200  # steps without progress between two exact repacks of a few hosts
REPACK_VMS = 40  # at most this many VMs in one repack (the pool and those of the hosts)
REPACK_HOSTS = 8  # open hosts taken into one repack
REPACK_WORK = 0.5  # CP-SAT deterministic seconds per repack


@dataclass(frozen=True)
class Packing:
    """What the search may change: VMs (rows of ``sizes``) onto hosts (rows of ``room``)."""

    room: np.ndarray  # hosts x resources: capacity left by the VMs that stay where they are
    sizes: np.ndarray  # vms x resources
    allowed: np.ndarray  # vms x hosts, boolean
    always_on: np.ndarray  # hosts active whatever happens (they keep VMs that stay)


@dataclass(frozen=True)
class Budget:
    deadline: float  # time.monotonic() value
    steps: int | None = None  # also stop after this many steps (repeatable runs)


def active_count(packing: Packing, assignment: np.ndarray) -> int:
    used = packing.always_on.copy()
    used[assignment] = True
    return int(used.sum())


def close_hosts(
    packing: Packing, assignment: np.ndarray, floor: int, budget: Budget, seed: int = 0
) -> np.ndarray:
    """A packing of the same VMs on fewer hosts, or ``assignment`` itself; never below
    ``floor`` (a lower bound). ``assignment`` maps each VM to a host index."""
    rng = np.random.default_rng(seed)
    best = assignment.copy()
    steps_left = [budget.steps if budget.steps is not None else np.iinfo(np.int64).max]
    failures = 0
    while active_count(packing, best) > floor and failures < MAX_FAILURES:
        if time.monotonic() >= budget.deadline or steps_left[0] <= 0:
            break
        found = _Search(packing, best, rng).close_one(budget.deadline, steps_left, failures)
        if found is None:
            failures += 1  # try other hosts: those a little less empty
        else:
            best, failures = found, 0
    return best


class _Search:
    def __init__(self, packing: Packing, assignment: np.ndarray, rng: np.random.Generator):
        self.p = packing
        self.rng = rng
        self.scale = np.maximum(packing.room.max(axis=0), 1).astype(np.float64)
        self.size_weight = (packing.sizes / self.scale).sum(axis=1)
        self.cost = self.size_weight**2
        self.penalty = np.ones(len(packing.sizes))
        self.at = assignment.copy()
        self.free = packing.room.copy()
        np.subtract.at(self.free, self.at, packing.sizes)
        self.members: list[list[int]] = [[] for _ in range(len(packing.room))]
        for vm, host in enumerate(self.at):
            self.members[host].append(vm)
        self.open = packing.always_on | np.array([bool(m) for m in self.members])
        self.closed = np.zeros(0, dtype=np.int64)
        self.pool: list[int] = []
        self.tabu: dict[int, dict[int, int]] = {}  # vm -> host -> first step it may return
        self.step = 0
        self._ways_of: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def close_one(self, deadline: float, steps_left: list[int], failures: int) -> np.ndarray | None:
        """Close hosts and search until the pool fits; the first try closes the least-loaded
        hosts, and each failure widens the choice to a few more, drawn at random."""
        loads = np.array([self.cost[m].sum() for m in self.members])
        closable = np.flatnonzero(self.open & ~self.p.always_on)
        if closable.size == 0:
            return None
        closable = closable[np.argsort(loads[closable], kind="stable")]
        if failures:
            choice = closable[: CLOSED + 2 * failures]
            closable = self.rng.choice(choice, min(CLOSED, len(choice)), replace=False)
        self.closed = closable[:CLOSED]
        self.open[self.closed] = False
        for closed in self.closed:
            for vm in list(self.members[closed]):
                self._take_out(vm)
        patience = max(STALL_STEPS, 20 * len(self.at))
        best, since = np.inf, 0
        while time.monotonic() < deadline and steps_left[0] > 0 and since < patience:
            home = self._home_for_pool()
            if home is not None:
                for vm, host in home.items():
                    self._put(vm, host)
                return self.at
            steps_left[0] -= 1
            self._move()
            pool = float(self.size_weight[self.pool].sum())
            best, since = (pool, 0) if pool < best - 1e-9 else (best, since + 1)
            if since and since % REPACK_AFTER == 0 and self._repack():
                return self.at
        return None

    def _repack(self) -> bool:
        """Solve exactly whether the pool and the VMs of a few open hosts fit on those hosts
        and all but one closed host; the hosts with the most room left go first, with some
        chance so that each try looks at another group."""
        free = (self.free / self.scale).sum(axis=1) * (1 + 0.3 * self.rng.random(len(self.free)))
        candidates = np.flatnonzero(self.open)
        chosen: list[int] = []
        vms = list(self.pool)
        for host in map(int, candidates[np.argsort(-free[candidates], kind="stable")]):
            if len(chosen) == REPACK_HOSTS:
                break
            if len(vms) + len(self.members[host]) <= REPACK_VMS:
                chosen.append(host)
                vms += self.members[host]
        hosts = [*map(int, self.closed[:-1]), *chosen]
        if (self.p.sizes[self.pool].sum(axis=0) > self.free[hosts].sum(axis=0)).any():
            return False  # not even the total room is there
        seed = int(self.rng.integers(1 << 30))
        homes = repack(self.p, vms, hosts, {vm: int(self.at[vm]) for vm in vms}, REPACK_WORK, seed)
        if homes is None:
            return False
        for host in chosen:
            for vm in list(self.members[host]):
                self._take_out(vm)
        for vm, host in homes.items():
            self._put(vm, host)
        return True

    def _home_for_pool(self) -> dict[int, int] | None:
        """Closed hosts for every pool VM, leaving one closed host empty (first fit, largest
        first); None if the pool does not fit that way."""
        keep = self.closed[:-1]
        free = self.free[keep].copy()
        home: dict[int, int] = {}
        for vm in sorted(self.pool, key=lambda v: -self.cost[v]):
            fits = (free >= self.p.sizes[vm]).all(axis=1) & self.p.allowed[vm, keep]
            if not fits.any():
                return None
            k = int(np.argmax(fits))
            free[k] -= self.p.sizes[vm]
            home[vm] = int(keep[k])
        return home

    def _take_out(self, vm: int) -> None:
        host = int(self.at[vm])
        self.free[host] += self.p.sizes[vm]
        self.members[host].remove(vm)
        self._changed(host)
        self.at[vm] = -1
        self.pool.append(vm)

    def _put(self, vm: int, host: int) -> None:
        self.pool.remove(vm)
        self.free[host] -= self.p.sizes[vm]
        self.members[host].append(vm)
        self._changed(host)
        self.at[vm] = host

    def _changed(self, host: int) -> None:
        self._ways_of.pop(host, None)
        self._table = None

    def _move(self) -> None:
        """One step: the swap that packs the most, else the tabu move whose ejections cost
        least; then every pool VM that fits somewhere as it is."""
        self.step += 1
        pairs = list(itertools.combinations(self.pool, 2))
        if len(pairs) > SWAP_PAIRS:
            pairs = [pairs[k] for k in self.rng.choice(len(pairs), SWAP_PAIRS, replace=False)]
        groups = [(vm,) for vm in self.pool] + pairs
        host, room, out = self._ejections()
        if len(host) == 0:
            return  # every host is closed: nothing can move
        vectors = np.array([self.p.sizes[list(g)].sum(axis=0) for g in groups])
        receivers = np.array([self._receivers(g) for g in groups])[:, host]
        after = self.free[host] + room  # room on the host once the way's VMs are out
        fits = receivers & (after[None, :, :] >= vectors[:, None, :]).all(axis=2)
        # On ties, the tighter fit: the normalised room left, summed over resources.
        left = (after / self.scale).sum(axis=1)[None, :] - (vectors / self.scale).sum(axis=1)[
            :, None
        ]
        tightness = 1e-6 * left
        noise = 1e-9 * self.rng.random(fits.shape)  # and then chance
        self.penalty[self.pool] *= PENALTY_GROWTH
        weighted = self.cost * self.penalty
        passes = ((self.size_weight, len(groups), -1e-7), (weighted, len(self.pool), np.inf))
        for weight, rows, better_than in passes:
            ejected = np.where(out >= 0, weight[out], 0.0).sum(axis=1)
            entering = np.array([weight[list(g)].sum() for g in groups[:rows]])
            change = ejected[None, :] - entering[:, None] + tightness[:rows] + noise[:rows]
            change = np.where(fits[:rows], change, np.inf)
            g, k = np.unravel_index(int(np.argmin(change)), change.shape)
            if change[g, k] < better_than:
                target = int(host[k])
                for vm in out[k][out[k] >= 0]:
                    self._take_out(int(vm))
                    self.tabu.setdefault(int(vm), {})[target] = self.step + int(
                        self.rng.integers(*TENURE)
                    )
                for vm in groups[g]:
                    self._put(vm, target)
                break
        self._fit_pool()

    def _receivers(self, group: tuple[int, ...]) -> np.ndarray:
        mask: np.ndarray = self.open.copy()
        for vm in group:
            mask &= self.p.allowed[vm]
            for host, until in self.tabu.get(vm, {}).items():
                if until > self.step:
                    mask[host] = False
        return mask

    def _fit_pool(self) -> None:
        for vm in sorted(self.pool, key=lambda v: -self.cost[v]):
            fits = self._receivers((vm,)) & (self.free >= self.p.sizes[vm]).all(axis=1)
            hosts = np.flatnonzero(fits)
            if hosts.size:
                slack = ((self.free[hosts] - self.p.sizes[vm]) / self.scale).sum(axis=1)
                self._put(vm, int(hosts[np.argmin(slack)]))

    def _ejections(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every way to make room on an open host: eject nothing, one VM or two VMs. As rows:
        the host, the room made (resources) and the VMs ejected (two columns, -1: none)."""
        if self._table is None:
            parts = []
            for host in map(int, np.flatnonzero(self.open)):
                if host not in self._ways_of:
                    members = self.members[host]
                    rows = [(-1, -1)] + [(vm, -1) for vm in members]
                    rows += list(itertools.combinations(members, 2))
                    out = np.array(rows, dtype=np.int64)
                    room = np.where(out[:, :, None] >= 0, self.p.sizes[out], 0).sum(axis=1)
                    self._ways_of[host] = (np.full(len(out), host), room, out)
                parts.append(self._ways_of[host])
            if not parts:
                empty = np.zeros(0, dtype=np.int64)
                return empty, np.zeros((0, self.free.shape[1]), dtype=np.int64), empty
            hosts, rooms, outs = zip(*parts, strict=True)
            self._table = (np.concatenate(hosts), np.concatenate(rooms), np.concatenate(outs))
        return self._table
