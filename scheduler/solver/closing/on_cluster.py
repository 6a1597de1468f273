"""Closing hosts on a cluster snapshot: the search of ``search.py`` over the snapshot's arrays.

Only VMs that no rule ties to other VMs take part: a VM under affinity, anti-affinity or
spread, or under any soft rule, stays where it is, and its load stays on its host. Hard pins
and bans become the allowed hosts of a VM. Every result is checked again with the
placement state before it is returned, so a slip in the array search can never leave the
engine with an overloaded host.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scheduler.model import Cluster, Host
from scheduler.placement.state import PlacementState
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.closing.packing import Packing, active_count
from scheduler.solver.closing.search import close_hosts


def close_hosts_of(
    cluster: Cluster,
    placement: Mapping[str, str | None],
    budget: Budget,
    seed: int = 0,
    known_bound: int = 0,
) -> dict[str, str | None]:
    """``placement`` with fewer active hosts if the search finds it in time, else itself.
    The search stops at the volume bound, or at ``known_bound`` if that is higher."""
    usable = [h for h in cluster.hosts if h.accepts_vms]
    index = {h.name: i for i, h in enumerate(usable)}
    tied = _tied_vms(cluster)
    movable = [vm for vm, h in placement.items() if h in index and vm not in tied]
    if len(movable) < 2:
        return dict(placement)
    resources = cluster.resources
    capacity = np.array([[h.capacity.get(r, 0) for r in resources] for h in usable])
    room = capacity.copy()
    always_on = np.zeros(len(usable), dtype=bool)
    for vm, host in placement.items():
        if host in index and vm in tied:
            demand = cluster.vm_by_name[vm].demand
            room[index[host]] -= np.array([demand.get(r, 0) for r in resources])
            always_on[index[host]] = True
    sizes = np.array(
        [[cluster.vm_by_name[vm].demand.get(r, 0) for r in resources] for vm in movable]
    )
    assignment = np.array([index[str(placement[vm])] for vm in movable])
    load = np.zeros_like(room)
    np.add.at(load, assignment, sizes)
    if (load > room).any():
        return dict(placement)  # an overloaded start: relieving it is not this search's job
    kind, allowed = _kinds(cluster, movable, usable, sizes, capacity)
    packing = Packing(room, sizes, kind, allowed, always_on)
    floor = max(active_hosts_lower_bound(cluster, movable), int(always_on.sum()), known_bound)
    found = close_hosts(packing, assignment, floor, budget, seed)
    if active_count(packing, found) >= active_count(packing, assignment):
        return dict(placement)
    result = dict(placement)
    result.update({vm: usable[h].name for vm, h in zip(movable, found, strict=True)})
    after = PlacementState(cluster, result).load
    if any(after[h.name].get(r, 0) > h.capacity.get(r, 0) for h in usable for r in resources):
        return dict(placement)
    return result


def _tied_vms(cluster: Cluster) -> set[str]:
    tied: set[str] = set()
    for rule in cluster.rules:
        if rule.soft or not rule.only_filters_hosts:
            tied.update(rule.vms)
    return tied


def _kinds(
    cluster: Cluster,
    movable: list[str],
    usable: list[Host],
    sizes: np.ndarray,
    capacity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each VM's row of the table of allowed hosts, and the table. VMs that fit the same
    host models and are under the same pins and bans share a row: the table stays a few
    rows deep at any size, where a row per VM would take gigabytes at 100,000 VMs."""
    models, model_of = np.unique(capacity, axis=0, return_inverse=True)
    fits = np.asarray((sizes[:, None, :] <= models[None, :, :]).all(axis=2))  # VMs x models
    filters = [rule for rule in cluster.hard_rules if rule.only_filters_hosts]
    under: dict[str, list[int]] = {}
    for k, rule in enumerate(filters):
        for vm in rule.vms:
            under.setdefault(vm, []).append(k)
    rows: dict[tuple[bytes, tuple[int, ...]], int] = {}
    table: list[np.ndarray] = []
    kind = np.empty(len(movable), dtype=np.int64)
    for i, vm in enumerate(movable):
        key = (fits[i].tobytes(), tuple(under.get(vm, ())))
        if key not in rows:
            rows[key] = len(table)
            row = np.asarray(fits[i])[model_of.ravel()]
            spec = cluster.vm_by_name[vm]
            for k in key[1]:
                row &= np.array([filters[k].host_allowed(spec, h) for h in usable])
            table.append(row)
        kind[i] = rows[key]
    return kind, np.array(table, dtype=bool).reshape(len(table), len(usable))
