"""Closing hosts one at a time: a tabu search with ejections, after the consistent
neighbourhood search of Buljubašić & Vasquez for vector packing (Comput. Oper. Res. 2016).

From a packing on m hosts, close the three least-loaded hosts and put their VMs in a pool.
Then, step by step, bring pool VMs back onto open hosts:

- a *refill* puts on an open host the set of its own VMs and pool VMs that is worth most
  (``knapsack.py``), any number leaving and entering at once; a VM is worth the square of
  its size times a penalty that grows while it waits in the pool, so large VMs and those
  that waited long get packed, and the pool keeps small ones, which fit anywhere later;
- when no refill helps, a *swap* brings one or two pool VMs onto a host and ejects at most
  two of its VMs into the pool, when that packs more (the pool's total size shrinks);
- else a *tabu move* inserts one pool VM and ejects the VMs worth least that make room,
  even if the pool grows;
- an ejected VM may not return to that host for a few steps (the tabu list), which keeps
  the search from undoing its own moves.

The steps run compiled (``steps.py``); this module chooses the hosts to close and
runs the exact repacks between them. When the pool has not shrunk for a while, an exact
repack (``repack.py``, CP-SAT) looks at the pool and a few roomy hosts at once.

As soon as the pool fits on two of the three closed hosts (first fit, else a short exact
search), a packing on m - 1 hosts is found, and the next hosts are closed. A try that
stalls ends with its pool put back where it fits; the next try starts from that reshaped
packing, with other hosts closed. The search stops at a lower bound, a deadline, a
number of steps (which makes it repeatable), or after many failed tries in a row.
"""

from __future__ import annotations

import numpy as np

from scheduler.solver.budget import WORK_PER_STEP, Budget
from scheduler.solver.closing import steps
from scheduler.solver.closing.packing import Packing, active_count
from scheduler.solver.closing.repack import repack

CLOSED = 3  # hosts emptied at once; the pool must fit on all but one of them
STALL_STEPS = 5_000  # give up on these closed hosts after this many steps without progress
MAX_FAILURES = 30  # closing tries in a row that may fail before the search stops
REPACK_AFTER = 2_000  # steps without progress between two exact repacks of a few hosts
REPACK_VMS = 40  # at most this many VMs in one repack (the pool and those of the hosts)
REPACK_HOSTS = 8  # open hosts taken into one repack
REPACK_WORK = 0.5  # CP-SAT deterministic seconds per repack
CHUNK_SECONDS = 0.02  # the compiled steps return this often to look at the budget


def close_hosts(
    packing: Packing, assignment: np.ndarray, floor: int, budget: Budget, seed: int = 0
) -> np.ndarray:
    """A packing of the same VMs on fewer hosts, or ``assignment`` itself; never below
    ``floor`` (a lower bound). ``assignment`` maps each VM to a host index."""
    rng = np.random.default_rng(seed)
    best = assignment.copy()
    start = best
    failures = 0
    while active_count(packing, best) > floor and failures < MAX_FAILURES:
        if budget.exhausted:
            break
        search = _Search(packing, start, rng, budget)
        found = search.close_one(failures)
        if found is None:
            failures += 1  # try other hosts: those a little less empty
            # The next try starts where this one ended, a packing the search has reshaped
            # (on as many hosts), so that it does not retrace the same steps.
            reshaped = search.reopened()
            start = best if reshaped is None else reshaped
            if active_count(packing, start) < active_count(packing, best):
                best, start, failures = start, start, 0
        else:
            best, start, failures = found, found, 0
    return best


class _Search:
    def __init__(
        self, packing: Packing, assignment: np.ndarray, rng: np.random.Generator, budget: Budget
    ):
        self.p = packing
        self.rng = rng
        self.budget = budget
        self.s = steps.arrays_for(
            packing.sizes, packing.room, packing.kind, packing.allowed, assignment,
            packing.always_on,
        )  # fmt: skip
        steps.seed(int(rng.integers(1 << 30)))

    def reopened(self) -> np.ndarray | None:
        """The packing this try ends on, the closed hosts open again, if the pool fits back."""
        return self.s.at.copy() if steps.reopen(self.s) else None

    def members(self, host: int) -> np.ndarray:
        return self.s.members[host, : self.s.held[host]]

    @property
    def pool(self) -> np.ndarray:
        return self.s.pool[: self.s.counters[steps.POOL]]

    def close_one(self, failures: int) -> np.ndarray | None:
        """Close hosts and search until the pool fits; the first try closes the least-loaded
        hosts, and each failure widens the choice to a few more, drawn at random."""
        s = self.s
        loads = np.array([s.cost[self.members(h)].sum() for h in range(len(s.free))])
        closable = np.flatnonzero(s.is_open & ~self.p.always_on)
        if closable.size == 0:
            return None
        closable = closable[np.argsort(loads[closable], kind="stable")]
        if failures:
            choice = closable[: CLOSED + 2 * failures]
            closable = self.rng.choice(choice, min(CLOSED, len(choice)), replace=False)
        s = self.s = steps.close(s, closable[:CLOSED])
        patience = max(STALL_STEPS, 20 * len(s.at))
        chunk = 1  # doubled while steps are cheap: one step can take seconds on a large pool
        while (allowed := self._steps_allowed(chunk)) > 0:
            started = self.budget.clock()
            stop, taken = steps.run_steps(s, allowed, patience, REPACK_AFTER)
            self.budget.charge(taken * WORK_PER_STEP)
            # The chunk follows the wall clock only to return often enough; the steps taken,
            # and so the answer of a deterministic budget, do not depend on it.
            took = self.budget.clock() - started
            if took < CHUNK_SECONDS / 2:
                chunk *= 2
            elif took > 2 * CHUNK_SECONDS and chunk > 1:
                chunk //= 2  # steps grow dearer as the pool grows
            if stop == steps.FOUND or (stop == steps.WANTS_REPACK and self._repack()):
                return s.at
            if stop == steps.STALLED:
                break
        return None

    def _steps_allowed(self, chunk: int) -> int:
        if self.budget.deterministic:
            return min(chunk, int(self.budget.left() / WORK_PER_STEP + 1e-9))
        return 0 if self.budget.exhausted else chunk

    def _repack(self) -> bool:
        """Solve exactly whether the pool and the VMs of a few open hosts fit on those hosts
        and all but one closed host; the hosts with the most room left go first, with some
        chance so that each try looks at another group."""
        s = self.s
        free = (s.free / s.scale).sum(axis=1) * (1 + 0.3 * self.rng.random(len(s.free)))
        candidates = np.flatnonzero(s.is_open)
        chosen: list[int] = []
        pool = [int(vm) for vm in self.pool]
        vms = list(pool)
        for host in map(int, candidates[np.argsort(-free[candidates], kind="stable")]):
            if len(chosen) == REPACK_HOSTS:
                break
            if len(vms) + len(self.members(host)) <= REPACK_VMS:
                chosen.append(host)
                vms += [int(vm) for vm in self.members(host)]
        hosts = [*map(int, s.closed[:-1]), *chosen]
        if (self.p.sizes[pool].sum(axis=0) > s.free[hosts].sum(axis=0)).any():
            return False  # not even the total room is there
        seed = int(self.rng.integers(1 << 30))
        hint = {vm: int(s.at[vm]) for vm in vms}
        homes = repack(self.p, vms, hosts, hint, self.budget.share(REPACK_WORK), seed)
        if homes is None:
            return False
        for host in chosen:
            for vm in self.members(host).copy():
                steps.take_out(s, vm)
        for vm, host in homes.items():
            steps.put(s, vm, host)
        return True
