"""The inner loop of the host-closing search (``search.py``), compiled with numba.

One step brings pool VMs back onto open hosts and ejects others (see ``search.py``
for the search itself). A step weighs every way to make room on every open host for every
pool VM and some pairs of them: hundreds of thousands of small checks, which run a hundred
times faster compiled than as array expressions rebuilt at each step. The search state is
a handful of arrays (``Arrays``) that both sides share; the Python side chooses hosts to
close and runs the exact repacks, this side runs the steps between them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scheduler.solver.closing.knapsack import best_subset, compiled, pack_into

SWAP_PAIRS = 12  # pairs of pool VMs tried together per step
TENURE = (10, 30)  # steps an ejected VM stays away from its host, drawn at random
TABU_SLOTS = 4  # hosts a VM can be kept away from at once; the oldest entry gives way
PENALTY_GROWTH = 1.02  # each step in the pool makes a VM dearer to eject again
REFILL_HOSTS = 500  # hosts refilled from the pool per step, drawn at random when there are more
REFILL_CANDIDATES = 24  # at most this many VMs weighed for one host: its own, then the pool's
REFILL_NODES = 4_000  # branch-and-bound nodes per refill
POOL_FIT_NODES = 2_000  # search nodes spent on fitting the pool when first fit misses
IMPROVES = -1e-7  # a swap must shrink the pool by more than rounding

# What ``run_steps`` stopped on.
FOUND = 1  # the pool fits on the closed hosts but one: they are filled, one host less
STALLED = 2  # no progress for ``patience`` steps
WANTS_REPACK = 3  # ``repack_after`` steps without progress: time for an exact repack
OUT_OF_STEPS = 4  # the steps granted to this call are used up


class Arrays(NamedTuple):
    """The search state. Hosts and VMs are row numbers; a VM in the pool is at host -1."""

    sizes: np.ndarray  # vms x resources, int64
    kind: np.ndarray  # vms: the VM's row of ``allowed``
    allowed: np.ndarray  # kinds x hosts, bool
    size_weight: np.ndarray  # vms: sizes summed over resources, each scaled to the largest host
    cost: np.ndarray  # vms: size_weight squared, what ejecting the VM costs
    penalty: np.ndarray  # vms: grows while the VM waits in the pool
    scale: np.ndarray  # resources, float64
    free: np.ndarray  # hosts x resources, int64: room left
    at: np.ndarray  # vms: host, or -1 in the pool
    members: np.ndarray  # hosts x most VMs one host can hold: VMs in the first held[h] cells
    held: np.ndarray  # hosts: how many VMs each holds
    slot: np.ndarray  # vms: the VM's cell in members
    is_open: np.ndarray  # hosts, bool: may receive VMs
    closed: np.ndarray  # the hosts being emptied; the pool must fit on all but the last
    pool: np.ndarray  # vms: the pool in the first counters[POOL] cells
    tabu_host: np.ndarray  # vms x TABU_SLOTS: a host the VM may not return to ...
    tabu_until: np.ndarray  # ... before this step
    counters: np.ndarray  # int64: POOL, STEP, SINCE
    best_pool: np.ndarray  # float64[1]: the smallest pool weight of this closing


POOL, STEP, SINCE = 0, 1, 2


def arrays_for(
    sizes: np.ndarray,
    room: np.ndarray,
    kind: np.ndarray,
    allowed: np.ndarray,
    assignment: np.ndarray,
    always_on: np.ndarray,
) -> Arrays:
    """The state of ``assignment`` (a host row for each VM) on hosts with ``room``; the
    hosts open are those that hold VMs and those ``always_on``."""
    vms, hosts = len(sizes), len(room)
    scale = np.maximum(room.max(axis=0), 1).astype(np.float64)
    size_weight = (sizes / scale).sum(axis=1)
    is_open = always_on.astype(np.bool_)  # a copy
    is_open[assignment] = True
    free = room.astype(np.int64).copy()
    np.subtract.at(free, assignment, sizes)
    count = np.bincount(assignment, minlength=hosts).astype(np.int64)
    members = np.full((hosts, max(1, int(count.max()), most_per_host(sizes, room))), -1)
    slot = np.zeros(vms, dtype=np.int64)
    filled = np.zeros(hosts, dtype=np.int64)
    for vm, host in enumerate(assignment):
        members[host, filled[host]] = vm
        slot[vm] = filled[host]
        filled[host] += 1
    return Arrays(
        sizes.astype(np.int64), kind.astype(np.int64), allowed.astype(np.bool_), size_weight,
        size_weight**2, np.ones(vms), scale, free, assignment.astype(np.int64).copy(),
        members, count, slot, is_open, np.zeros(0, dtype=np.int64),
        np.full(vms, -1, dtype=np.int64), np.full((vms, TABU_SLOTS), -1, dtype=np.int64),
        np.zeros((vms, TABU_SLOTS), dtype=np.int64), np.zeros(3, dtype=np.int64),
        np.full(1, np.inf),
    )  # fmt: skip


def most_per_host(sizes: np.ndarray, room: np.ndarray) -> int:
    """How many VMs one host can hold at most: in each resource, the smallest VMs that fit
    in the largest room; the tightest resource counts."""
    most = len(sizes)
    for r in range(sizes.shape[1]):
        smallest = np.cumsum(np.sort(sizes[:, r]))
        most = min(most, int(np.searchsorted(smallest, room[:, r].max(), side="right")))
    return most


def close(s: Arrays, hosts: np.ndarray) -> Arrays:
    """The state with ``hosts`` closed (in that order): they take no VM, their VMs wait in
    the pool, and the search's progress counts from here."""
    s = s._replace(closed=np.array(hosts, dtype=np.int64))
    s.is_open[s.closed] = False
    for host in s.closed:
        for vm in s.members[host, : s.held[host]].copy():
            take_out(s, vm)
    s.counters[SINCE] = 0
    s.best_pool[0] = np.inf
    return s


@compiled
def reopen(s: Arrays) -> bool:
    """Gives up on the closed hosts: they take VMs again, the tabu list is cleared, and the
    pool goes where it fits best. True if the whole pool found a home."""
    for host in s.closed:
        s.is_open[host] = True
    s.tabu_until[:] = 0
    _fit_pool(s)
    return bool(s.counters[POOL] == 0)


@compiled
def seed(value: int) -> None:
    np.random.seed(value)


@compiled
def take_out(s: Arrays, vm: int) -> None:
    host = s.at[vm]
    s.free[host] += s.sizes[vm]
    last = s.members[host, s.held[host] - 1]
    s.members[host, s.slot[vm]] = last
    s.slot[last] = s.slot[vm]
    s.held[host] -= 1
    s.at[vm] = -1
    s.pool[s.counters[POOL]] = vm
    s.counters[POOL] += 1


@compiled
def put(s: Arrays, vm: int, host: int) -> None:
    n = s.counters[POOL]
    for i in range(n):
        if s.pool[i] == vm:
            s.pool[i] = s.pool[n - 1]
            break
    s.counters[POOL] = n - 1
    s.free[host] -= s.sizes[vm]
    s.members[host, s.held[host]] = vm
    s.slot[vm] = s.held[host]
    s.held[host] += 1
    s.at[vm] = host


@compiled
def run_steps(s: Arrays, steps: int, patience: int, repack_after: int) -> tuple[int, int]:
    """Steps until the pool finds a home, or one of the other stops; returns the stop and
    the steps taken."""
    for taken in range(steps):
        if _home_for_pool(s):
            return FOUND, taken
        _step(s)
        weight = 0.0
        for i in range(s.counters[POOL]):
            weight += s.size_weight[s.pool[i]]
        if weight < s.best_pool[0] - 1e-9:
            s.best_pool[0] = weight
            s.counters[SINCE] = 0
        else:
            s.counters[SINCE] += 1
        since = s.counters[SINCE]
        if since >= patience:
            return STALLED, taken + 1
        if since % repack_after == 0 and since > 0:
            return WANTS_REPACK, taken + 1
    return OUT_OF_STEPS, steps


@compiled
def _home_for_pool(s: Arrays) -> bool:
    """Fills the closed hosts but the last with the pool, if the whole pool fits: first fit
    largest first, else a short exact search."""
    keep = s.closed[:-1]
    free = s.free[keep].copy()
    order = _pool_by_cost(s)
    if len(order) == 0:
        return True
    home = np.full(len(order), -1, dtype=np.int64)
    for i, vm in enumerate(order):
        for k in range(len(keep)):
            if s.allowed[s.kind[vm], keep[k]] and _fits(free[k], s.sizes[vm]):
                free[k] -= s.sizes[vm]
                home[i] = k
                break
        if home[i] < 0:
            break
    if home[-1] < 0:
        # First fit missed; an exact search may still find a way, if the room is there.
        if (s.sizes[order].sum(axis=0) > s.free[keep].sum(axis=0)).any():
            return False
        allowed = s.allowed[s.kind[order]][:, keep]
        home = pack_into(s.sizes[order], allowed, s.free[keep], POOL_FIT_NODES)
        if home[-1] < 0:
            return False
    for i, vm in enumerate(order):
        put(s, vm, keep[home[i]])
    return True


@compiled
def _pool_by_cost(s: Arrays) -> np.ndarray:
    pool = s.pool[: s.counters[POOL]].copy()
    return pool[np.argsort(-s.cost[pool], kind="mergesort")]


@compiled
def _fits(free: np.ndarray, size: np.ndarray) -> bool:
    for r in range(len(size)):  # noqa: SIM110 (a plain loop compiles to the fastest code)
        if free[r] < size[r]:
            return False
    return True


@compiled
def _may_enter(s: Arrays, vm: int, host: int) -> bool:
    if not (s.is_open[host] and s.allowed[s.kind[vm], host]):
        return False
    for k in range(TABU_SLOTS):
        if s.tabu_host[vm, k] == host and s.tabu_until[vm, k] > s.counters[STEP]:
            return False
    return True


@compiled
def _keep_away(s: Arrays, vm: int, host: int, until: int) -> None:
    oldest = 0
    for k in range(TABU_SLOTS):
        if s.tabu_host[vm, k] == host:
            oldest = k
            break
        if s.tabu_until[vm, k] < s.tabu_until[vm, oldest]:
            oldest = k
    s.tabu_host[vm, oldest] = host
    s.tabu_until[vm, oldest] = until


@compiled
def _step(s: Arrays) -> None:
    """Refills of the open hosts from the pool (``_refill``); if none packs more, the swap that
    packs the most (the pool's size weight shrinks), else the tabu move whose ejections cost
    least (a VM costs its size squared times its penalty); ties go to the tighter fit, then
    to chance. Then every pool VM that fits somewhere goes there."""
    s.counters[STEP] += 1
    n = s.counters[POOL]
    if n == 0:
        return
    refilled = False
    for h in np.random.permutation(np.flatnonzero(s.is_open))[:REFILL_HOSTS]:
        refilled |= _refill(s, h)
    n = s.counters[POOL]
    if refilled or n == 0:
        _fit_pool(s)
        return
    pool = s.pool[:n].copy()
    groups = np.full((n + SWAP_PAIRS, 2), -1, dtype=np.int64)
    groups[:n, 0] = pool
    g_count = n
    if n * (n - 1) // 2 <= SWAP_PAIRS:
        for a in range(n):
            for b in range(a + 1, n):
                groups[g_count] = (pool[a], pool[b])
                g_count += 1
    else:
        for _ in range(SWAP_PAIRS):
            a, b = np.random.randint(n), np.random.randint(n - 1)
            groups[g_count] = (pool[a], pool[b + (b >= a)])
            g_count += 1
    for vm in pool:
        s.penalty[vm] *= PENALTY_GROWTH
    hosts = len(s.free)
    free_weight = np.zeros(hosts)
    for h in range(hosts):
        for r in range(s.free.shape[1]):
            free_weight[h] += s.free[h, r] / s.scale[r]
    best = np.array([IMPROVES, np.inf])  # the swap pass, the tabu pass
    chosen = np.full((2, 4), -1, dtype=np.int64)  # group row, host, ejected, ejected
    vector = np.zeros(s.sizes.shape[1], dtype=np.int64)
    for g in range(g_count):
        first, second = groups[g, 0], groups[g, 1]
        vector[:] = s.sizes[first]
        entering = s.size_weight[first]
        entering_cost = s.cost[first] * s.penalty[first]
        if second >= 0:
            vector += s.sizes[second]
            entering += s.size_weight[second]
        for h in range(hosts):
            if not _may_enter(s, first, h) or (second >= 0 and not _may_enter(s, second, h)):
                continue
            members = s.members[h, : s.held[h]]
            # Ways to make room: eject nothing (i = -1), one VM (j = i) or two (j > i).
            for i in range(-1, len(members)):
                a = members[i] if i >= 0 else -1
                for j in range(i, len(members) if i >= 0 else 0):
                    b = members[j] if j > i else -1
                    room_weight = free_weight[h]
                    room_weight += (s.size_weight[a] if a >= 0 else 0.0) + (
                        s.size_weight[b] if b >= 0 else 0.0
                    )
                    if room_weight < entering - 1e-9:
                        continue  # the room made is too small in sum, so in some resource
                    if not _fits_after(s, h, a, b, vector):
                        continue
                    tie = 1e-6 * (room_weight - entering) + 1e-9 * np.random.random()
                    ejected = (s.size_weight[a] if a >= 0 else 0.0) + (
                        s.size_weight[b] if b >= 0 else 0.0
                    )
                    change = ejected - entering + tie
                    if change < best[0]:
                        best[0] = change
                        chosen[0] = (g, h, a, b)
                    if second < 0:
                        ejected_cost = (s.cost[a] * s.penalty[a] if a >= 0 else 0.0) + (
                            s.cost[b] * s.penalty[b] if b >= 0 else 0.0
                        )
                        change = ejected_cost - entering_cost + tie
                        if change < best[1]:
                            best[1] = change
                            chosen[1] = (g, h, a, b)
    move = chosen[0] if chosen[0, 0] >= 0 else chosen[1]
    if move[0] >= 0:
        g, h = move[0], move[1]
        for vm in move[2:]:
            if vm >= 0:
                take_out(s, vm)
                tenure = np.random.randint(TENURE[0], TENURE[1])
                _keep_away(s, vm, h, s.counters[STEP] + tenure)
        for vm in groups[g]:
            if vm >= 0:
                put(s, vm, h)
    _fit_pool(s)


@compiled
def _refill(s: Arrays, host: int) -> bool:
    """Puts on ``host`` the set of its own VMs and pool VMs that fits and is worth most, if
    it is worth more than what the host holds. A VM is worth its cost times its penalty, so
    large VMs and those long in the pool get packed, and the pool keeps small ones."""
    held = s.held[host]
    room = s.free[host].copy()
    own = s.members[host, :held].copy()
    for vm in own:
        room += s.sizes[vm]
    entering = np.empty(s.counters[POOL], dtype=np.int64)
    count = 0
    for vm in s.pool[: s.counters[POOL]]:
        if _may_enter(s, vm, host) and _fits(room, s.sizes[vm]):
            entering[count] = vm
            count += 1
    if count == 0:
        return False
    entering = entering[:count]
    entering = entering[np.argsort(-_worth(s, entering), kind="mergesort")]
    weighed = np.concatenate((own, entering))[: max(held, REFILL_CANDIDATES)]
    worth = _worth(s, weighed)
    order = np.argsort(-worth, kind="mergesort")
    weighed, worth = weighed[order], worth[order]
    chosen, value = best_subset(s.sizes[weighed], worth, room, REFILL_NODES)
    if value <= _worth(s, own).sum() + 1e-7:
        return False
    for vm in own:
        take_out(s, vm)
    for k in range(len(weighed)):
        if chosen[k]:
            put(s, weighed[k], host)
    return True


@compiled
def _worth(s: Arrays, vms: np.ndarray) -> np.ndarray:
    worth: np.ndarray = s.cost[vms] * s.penalty[vms]
    return worth


@compiled
def _fits_after(s: Arrays, host: int, a: int, b: int, vector: np.ndarray) -> bool:
    for r in range(len(vector)):
        room = s.free[host, r]
        if a >= 0:
            room += s.sizes[a, r]
        if b >= 0:
            room += s.sizes[b, r]
        if room < vector[r]:
            return False
    return True


@compiled
def _fit_pool(s: Arrays) -> None:
    """Every pool VM that fits on an open host as it is goes to the one it fills best."""
    for vm in _pool_by_cost(s):
        best_host, best_left = -1, np.inf
        for h in range(len(s.free)):
            if _may_enter(s, vm, h) and _fits(s.free[h], s.sizes[vm]):
                left = 0.0
                for r in range(s.free.shape[1]):
                    left += (s.free[h, r] - s.sizes[vm, r]) / s.scale[r]
                if left < best_left:
                    best_host, best_left = h, left
        if best_host >= 0:
            put(s, vm, best_host)


def warm_up() -> None:
    """Compiles the steps (once per machine: the code is cached on disk) on a tiny packing,
    so that the first real search does not spend its time limit compiling."""
    sizes = np.array([[3, 1], [2, 2], [1, 3], [2, 1]], dtype=np.int64)
    room = np.full((3, 2), 5, dtype=np.int64)
    kind, allowed = np.zeros(4, dtype=np.int64), np.ones((1, 3), dtype=bool)
    s = arrays_for(sizes, room, kind, allowed, np.array([0, 0, 1, 2]), np.zeros(3, dtype=bool))
    seed(0)
    take_out(s, 0)
    put(s, 0, 0)
    run_steps(close(s, np.array([2, 1])), 10, 100, 5)
