"""Greedy starts: quick placements the pipeline improves on.

- ``relieve_overloads``: take VMs off hosts that hold more than their capacity.
- ``repair_rules``: move the VMs of broken hard rules, one at a time, until each holds.
- ``empty_hosts``: visit hosts in a given order and move all VMs of a host elsewhere if
  they all fit; otherwise leave the host untouched. Ordered by fewest VMs and fitted best
  fit, it is vmpack's incremental start.
- ``first_fit_decreasing``: pack every VM from scratch, ignoring where it runs now.
- ``send_home``: undo the moves of a target that buy nothing.

Waiting VMs are placed by ``placement.packer.place_pending``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from scheduler.model import Cluster
from scheduler.placement.packer import Fit, Packer, largest_first, place_pending, size_key
from scheduler.rules import Rule
from scheduler.rules.base import PlacementView


def relieve_overloads(packer: Packer) -> list[tuple[str, str]]:
    """Take VMs off hosts that hold more than their capacity (demand grew under them or the
    capacity shrank), smallest first, until each fits; returns (VM, host it left)."""
    taken: list[tuple[str, str]] = []
    for i in np.flatnonzero((packer.free < 0).any(axis=1)):
        host = packer.hosts[i]
        over = packer.free[i] < 0
        for vm in reversed(largest_first(packer, packer.state.residents[host])):
            if (packer.free[i] >= 0).all():
                break
            if (packer.demand(vm)[over] > 0).any():
                packer.unplace(vm)
                taken.append((vm, host))
    return taken


def repair_rules(packer: Packer) -> list[str]:
    """End the violations of hard rules (a rule added after its VMs were placed, a host
    back from failure) by moving their VMs, smallest first: a VM moves only if taking it
    away lessens the rule's violations and a host that keeps every rule takes it. Returns
    the VMs moved; a rule that no single move helps stays broken (the model may still)."""
    moved: list[str] = []
    cluster, state = packer.cluster, packer.state
    for rule in broken_hard_rules(cluster, state):
        for vm in sorted(rule.vms, key=size_key(packer)):
            broken = len(rule.violations(cluster, state))
            source = state.host_of(vm)
            if not broken:
                break
            if source is None:
                continue
            packer.unplace(vm)
            helps = len(rule.violations(cluster, state)) < broken
            if not helps or place_pending(packer, [vm]):
                packer.move(vm, source)  # back where it was
            elif state.host_of(vm) != source:
                moved.append(vm)
    return moved


def broken_hard_rules(cluster: Cluster, view: PlacementView) -> list[Rule]:
    return [rule for rule in cluster.hard_rules if rule.violations(cluster, view)]


def empty_hosts(
    packer: Packer, order: Sequence[str], fit: Fit, max_moves: int | None = None
) -> list[str]:
    """Try to empty each host of ``order`` in turn, within ``max_moves`` migrations;
    returns the hosts emptied."""
    budget = max_moves if max_moves is not None else len(packer.state.presence)
    closed = np.zeros(len(packer.hosts), dtype=bool)  # emptied hosts receive nothing more
    emptied = []
    for host in order:
        residents = largest_first(packer, packer.state.residents[host])
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


def send_home(cluster: Cluster, placement: Mapping[str, str | None]) -> dict[str, str | None]:
    """Moves undone where they buy nothing: a VM the target moves goes back to the host it
    runs on when that host stays active, has room and every hard rule allows it, the largest
    first (the most memory not moved). VMs of soft rules and of groups that move together
    keep their target: their moves are weighed together. No host is added, and one may be
    freed; the searches before may leave many such moves when they ran out of time."""
    packer = Packer(cluster, placement)
    tied = {vm for rule in cluster.rules if rule.soft or rule.wave_group for vm in rule.vms}
    movers = [
        v.name for v in cluster.vms
        if v.host is not None and v.name not in tied and placement.get(v.name) not in (None, v.host)
    ]  # fmt: skip
    for vm in sorted(movers, key=size_key(packer), reverse=True):
        home = str(cluster.vm_by_name[vm].host)
        if packer.count[packer.index[home]] > 0 and packer.can_take(vm, home):
            packer.move(vm, home)
    return packer.state.placement()
