"""Targets that a plan can reach.

A migrating VM holds its place on both its hosts, and in the failure domains of both. Some
targets are valid at their end and unreachable on the way; before the search, the VMs they
would move are kept where a plan can take them (``StayPut``, a pin with its reason):

- under a hard spread rule whose every domain is full (as many of its VMs in each rack as
  the rule allows), no VM of the rule can ever change domain: there is no free slot to pass
  through, at any step, in any order. Each stays in its domain; moves inside it stay free.
- a hard affinity group moves in one wave (one by one, it would be apart for a while), so a
  group of more VMs than ``max_parallel_per_host`` (or ``max_parallel``) may migrate at once
  cannot move at all: it stays on its host.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from scheduler.model import Cluster, Goal
from scheduler.rules import Pin, Rule, Spread

# Goals that move VMs by live migration; placing and restarting need no passage.
MIGRATING_GOALS = (Goal.CONSOLIDATE, Goal.BALANCE, Goal.EVACUATE, Goal.REPAIR)


@dataclass(frozen=True)
class StayPut(Pin):
    """A VM kept on ``hosts`` because no plan could take it elsewhere, and why."""

    why: str = ""
    kind = "stay"
    binds_restarts = False  # a VM of a failed host restarts wherever the rules allow

    @property
    def label(self) -> str:
        return f"{self.vms[0]} stays: {self.why}"


def reachable(cluster: Cluster, goal: Goal) -> Cluster:
    """The snapshot with a ``StayPut`` for each VM no plan could move where it might go."""
    if goal not in MIGRATING_GOALS:
        return cluster
    position = max((r.position for r in cluster.rules), default=0)
    locks: list[Rule] = []
    for rule in cluster.hard_rules:
        if isinstance(rule, Spread):
            found = _locked(cluster, rule)
            why = f"{rule.label} has no free {rule.label_key} to pass through"
        elif rule.wave_group:
            found = _group_stuck(cluster, rule)
            why = f"{rule.label} moves in one wave, more than may migrate at once"
        else:
            continue
        for vm, hosts in found.items():
            position += 1
            locks.append(StayPut(position, (vm,), hosts=hosts, why=why))
    if not locks:
        return cluster
    return replace(cluster, rules=(*cluster.rules, *locks))


def _group_stuck(cluster: Cluster, rule: Rule) -> dict[str, tuple[str, ...]]:
    """VM -> its host, for a group together now that is too large to move in one wave."""
    where = {
        vm: host
        for vm in rule.wave_group
        if vm in cluster.vm_by_name and (host := cluster.vm_by_name[vm].host) is not None
    }
    at_once = min(cluster.limits.max_parallel_per_host, cluster.limits.max_parallel)
    if len(set(where.values())) != 1 or len(where) <= at_once:
        return {}  # apart already (moved one by one), or small enough to move together
    return {vm: (host,) for vm, host in where.items()}


def _locked(cluster: Cluster, rule: Spread) -> dict[str, tuple[str, ...]]:
    """VM -> the hosts of its domain, if every domain holds exactly the rule's maximum."""
    domain_hosts: dict[str, list[str]] = {}
    for each in cluster.hosts:
        domain_hosts.setdefault(rule.domain(cluster, each.name), []).append(each.name)
    where = {
        vm: host
        for vm in rule.vms
        if vm in cluster.vm_by_name and (host := cluster.vm_by_name[vm].host) is not None
    }
    counts = Counter(rule.domain(cluster, host) for host in where.values())
    if any(counts[d] != rule.max_per_domain for d in domain_hosts):
        return {}  # a free slot somewhere (or the rule broken already): VMs can pass
    return {vm: tuple(domain_hosts[rule.domain(cluster, host)]) for vm, host in where.items()}
