"""Small exact packings for the host-closing search, by depth-first search compiled with
numba.

- ``best_subset``: the heaviest set of VMs that fits in one host's room, a multi-resource
  knapsack. The search refills one host at a time from its own VMs and the pool (the
  "unlimited add/drop" descent of Buljubašić & Vasquez): any number of VMs may leave and
  enter at once, which the one- and two-VM swaps cannot do.
- ``pack_into``: a home on a few hosts for every VM of the pool, when first fit finds none.

The candidates are few (a host's VMs and some pool VMs, at most a few dozen), so an exact
answer is cheap; a node limit keeps the rare large case bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

import numba
import numpy as np

_Fn = TypeVar("_Fn", bound=Callable[..., object])


def compiled(fn: _Fn) -> _Fn:
    """numba's nopython compilation, cached on disk, typed as the function it compiles."""
    return cast(_Fn, numba.njit(cache=True)(fn))


@compiled
def best_subset(
    sizes: np.ndarray, weight: np.ndarray, room: np.ndarray, node_limit: int
) -> tuple[np.ndarray, float]:
    """The subset of items (rows of ``sizes``) of greatest total ``weight`` whose sizes
    fit in ``room`` in every resource, and that weight. Items should come heaviest first:
    the bound (what is packed plus all that is left) then cuts early."""
    count = len(weight)
    left = np.zeros(count + 1)
    for i in range(count - 1, -1, -1):
        left[i] = left[i + 1] + weight[i]
    take = np.zeros(count, dtype=np.bool_)
    best = np.zeros(count, dtype=np.bool_)
    best_value = -1.0
    used = np.zeros(len(room), dtype=np.int64)
    value = 0.0
    # Per depth: 0 first visit (try taking the item), 1 taken branch done, 2 both done.
    tried = np.zeros(count + 1, dtype=np.int64)
    depth, nodes = 0, 0
    while depth >= 0:
        if tried[depth] == 0:
            if depth == count or value + left[depth] <= best_value + 1e-12:
                if value > best_value:
                    best_value = value
                    best[:] = take
                depth -= 1
                continue
            nodes += 1
            if nodes > node_limit and best_value >= 0:
                break  # the first dive always ends in a set, the best found so far stands
            tried[depth] = 1
            fits = True
            for r in range(len(room)):
                if used[r] + sizes[depth, r] > room[r]:
                    fits = False
                    break
            if fits:
                take[depth] = True
                used += sizes[depth]
                value += weight[depth]
                tried[depth + 1] = 0
                depth += 1
        elif tried[depth] == 1:
            if take[depth]:
                take[depth] = False
                used -= sizes[depth]
                value -= weight[depth]
            tried[depth] = 2
            tried[depth + 1] = 0
            depth += 1
        else:
            tried[depth] = 0
            depth -= 1
    return best, max(best_value, 0.0)


@compiled
def pack_into(
    sizes: np.ndarray, allowed: np.ndarray, rooms: np.ndarray, node_limit: int
) -> np.ndarray:
    """A home (a row of ``rooms``) for every item (a row of ``sizes``) where ``allowed``,
    found by depth-first search, or -1 everywhere if there is none or the nodes run out.
    Items should come largest first. Two rooms alike (same room left, same items allowed)
    are tried once, so that a few empty hosts do not multiply the search."""
    count, hosts = len(sizes), len(rooms)
    alike = np.zeros((hosts, hosts), dtype=np.bool_)
    for a in range(hosts):
        for b in range(a):
            alike[a, b] = (allowed[:, a] == allowed[:, b]).all()
    left = np.zeros((count + 1, sizes.shape[1]), dtype=np.int64)
    for i in range(count - 1, -1, -1):
        left[i] = left[i + 1] + sizes[i]
    free = rooms.copy()
    home = np.full(count, -1, dtype=np.int64)
    depth, nodes = 0, 0
    while 0 <= depth < count:
        host = home[depth]
        if host >= 0:
            free[host] += sizes[depth]  # back from a dead end: try the next host
        host += 1
        while host < hosts and not _may_hold(free, alike, allowed[depth], sizes[depth], host):
            host += 1
        nodes += 1
        if nodes > node_limit:
            break
        if host == hosts:
            home[depth] = -1
            depth -= 1
            continue
        home[depth] = host
        free[host] -= sizes[depth]
        if (left[depth + 1] > free.sum(axis=0)).any():
            continue  # the rest cannot fit even in total: the next host for this item
        depth += 1
    if depth < count:
        home[:] = -1
    return home


@compiled
def _may_hold(
    free: np.ndarray, alike: np.ndarray, allowed: np.ndarray, size: np.ndarray, host: int
) -> bool:
    if not allowed[host] or (free[host] < size).any():
        return False
    for earlier in range(host):
        if alike[host, earlier] and allowed[earlier] and (free[earlier] == free[host]).all():
            return False  # the same choice was tried on the earlier host
    return True
