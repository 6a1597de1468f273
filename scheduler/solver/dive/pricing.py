"""The pricing step of column generation: host contents worth more than a host costs.

Given a value for each VM (the LP duals of "every VM is placed"), find sets of VMs that fit
on one host and whose values sum above 1, the price of a host: each is a column that may
lower the LP's value. A compiled depth-first branch and bound finds, for each VM, the most
valuable set it leads; a node limit keeps a hard case bounded, and the caller learns
whether the search ran to its end (only then is "no column" a proof, and the LP value a
lower bound).
"""

from __future__ import annotations

import numpy as np

from scheduler.solver.closing.knapsack import compiled

PRICE = 1.0 + 1e-6  # a host costs 1; the margin keeps LP rounding from repeating a column


@compiled
def valuable_sets(
    sizes: np.ndarray, value: np.ndarray, room: np.ndarray, most: int, node_limit: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Sets of items (rows of ``sizes``) that fit in ``room`` with total ``value`` above
    1: for each item, the most valuable set it leads (it is the set's first in order); of
    those, the ``most`` most valuable, as a (sets x items) boolean table, their values, and
    whether the search ran to its end. Items should come most valuable first."""
    count, dims = sizes.shape
    left = np.zeros(count + 1)
    for i in range(count - 1, -1, -1):
        left[i] = left[i + 1] + value[i]
    # Two more bounds, from the room left: (a) no more items than fit by the smallest size
    # still to come, in each resource, and they are worth at most the next ones in order;
    # (b) in each resource, the room left times the best value per unit still to come.
    smallest = np.zeros((count + 1, dims), dtype=np.int64)
    smallest[count] = room + 1
    rate = np.zeros((count + 1, dims))
    for i in range(count - 1, -1, -1):
        for r in range(dims):
            smallest[i, r] = min(smallest[i + 1, r], sizes[i, r])
            rate[i, r] = max(rate[i + 1, r], value[i] * room[r] / max(float(sizes[i, r]), 1e-9))
    # The best set found for each leading item (its first in order): a round of columns
    # then covers many VMs, not the many near copies of one good set.
    found = np.zeros((count, count), dtype=np.bool_)
    found_value = np.zeros(count)
    take = np.zeros(count, dtype=np.bool_)
    used = np.zeros(dims, dtype=np.int64)
    total = 0.0
    # The set grows by items in order: ``chosen[:level]`` are in it, and ``next_item[level]``
    # is the next one to try adding. Each bound only falls as that item moves on, so the
    # first item whose bound does not beat the floor ends the level.
    chosen = np.zeros(count, dtype=np.int64)
    next_item = np.zeros(count + 1, dtype=np.int64)
    level, nodes = 0, 0
    complete = True
    while True:
        item = next_item[level]
        # A set must beat the price of a host (and LP rounding), and the best of its lead.
        floor = max(PRICE, found_value[chosen[0]]) if level > 0 else PRICE
        if item >= count or _bound(total, used, room, item, left, smallest, rate) <= floor:
            if level == 0:
                break
            level -= 1
            last = chosen[level]
            take[last] = False
            used -= sizes[last]
            total -= value[last]
            continue
        next_item[level] = item + 1
        if not _fits(used, sizes[item], room):
            continue
        nodes += 1
        if nodes > node_limit:
            complete = False
            break
        take[item] = True
        used += sizes[item]
        total += value[item]
        chosen[level] = item
        lead = chosen[0]
        if total > max(PRICE, found_value[lead]):
            found[lead] = take
            found_value[lead] = total
        level += 1
        next_item[level] = item + 1
    order = np.argsort(-found_value)[:most]
    order = order[found_value[order] > 0]
    return found[order], found_value[order], complete


@compiled
def _bound(
    total: float,
    used: np.ndarray,
    room: np.ndarray,
    item: int,
    left: np.ndarray,
    smallest: np.ndarray,
    rate: np.ndarray,
) -> float:
    """What a set can be worth once grown from items ``item`` onwards."""
    count = len(left) - 1
    most_items = count - item
    bound = total + left[item]
    for r in range(len(room)):
        rest = room[r] - used[r]
        if smallest[item, r] > 0:  # items of size 0 there fit whatever is left
            most_items = min(most_items, rest // smallest[item, r])
            bound = min(bound, total + rate[item, r] * rest / room[r])
    return float(min(bound, total + left[item] - left[item + most_items]))


@compiled
def _fits(used: np.ndarray, size: np.ndarray, room: np.ndarray) -> bool:
    for r in range(len(room)):  # noqa: SIM110 (a plain loop compiles to the fastest code)
        if used[r] + size[r] > room[r]:
            return False
    return True


def warm_up() -> None:
    """Compiles the pricing (once per machine: the code is cached on disk)."""
    sizes = np.array([[3, 1], [2, 2], [1, 3]], dtype=np.int64)
    valuable_sets(sizes, np.array([0.6, 0.5, 0.4]), np.array([5, 5], dtype=np.int64), 3, 100)
