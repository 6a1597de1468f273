"""The cluster snapshot: frozen values that every stage of vmpack reads.

Amounts are integers in the unit their resource name carries: ``vcpus``, ``memory_mib``,
``disk_mib``; further countable resources (``gpu``, ``net_mbps``, licences) are plain counts.
A host's ``capacity`` is what may be allocated on it, that is, its physical size times the
overcommit ratio of each resource (rounded down), so the packing core never sees ratios.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only for the annotation: the rules import the model at run time, never the reverse.
    from scheduler.rules.base import Rule

VCPUS = "vcpus"
MEMORY = "memory_mib"
DISK = "disk_mib"
CORE_RESOURCES = (VCPUS, MEMORY, DISK)

Amounts = Mapping[str, int]


class HostState(enum.StrEnum):
    UP = "up"
    SUSPECT = "suspect"  # its agent stopped reporting: nothing new is placed there
    MAINTENANCE = "maintenance"
    DOWN = "down"
    STANDBY = "standby"  # powered off on purpose (no VMs); silent, never taken for down


class Goal(enum.StrEnum):
    PLACE = "place"
    CONSOLIDATE = "consolidate"
    BALANCE = "balance"
    EVACUATE = "evacuate"
    REPAIR = "repair"  # end every hard-rule violation with the fewest moves


@dataclass(frozen=True)
class Host:
    name: str
    physical: Amounts
    capacity: Amounts
    labels: Mapping[str, str] = field(default_factory=dict)
    state: HostState = HostState.UP

    @property
    def accepts_vms(self) -> bool:
        return self.state is HostState.UP


@dataclass(frozen=True)
class VM:
    name: str
    demand: Amounts
    host: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    usage: Mapping[str, float] = field(default_factory=dict)
    priority: int = 0  # restart order after a host failure: higher first

    @property
    def memory_mib(self) -> int:
        return self.demand.get(MEMORY, 0)


@dataclass(frozen=True)
class Limits:
    max_moves: int | None = None
    max_parallel: int = 8
    max_parallel_per_host: int = 2


@dataclass(frozen=True)
class HaPolicy:
    """The reserve: the VMs of any ``host_failures_to_tolerate`` failed hosts, or of one
    failed domain (hosts sharing the ``failure_domain`` label value), restart elsewhere."""

    host_failures_to_tolerate: int = 0
    failure_domain: str | None = None

    @property
    def required(self) -> bool:
        return self.host_failures_to_tolerate > 0 or self.failure_domain is not None


# Allocation ratios where the policy names none: CPU is shared, memory and disk are not.
DEFAULT_OVERCOMMIT: Mapping[str, float] = {VCPUS: 4.0, MEMORY: 1.0, DISK: 1.0}


def allocatable(physical: Amounts, ratios: Mapping[str, float]) -> dict[str, int]:
    """What may be allocated on a host: each physical amount times its ratio (1.0 where none
    is given), rounded down; the small slack keeps 0.1 * 10 from rounding to 0."""
    return {r: int(amount * ratios.get(r, 1.0) + 1e-9) for r, amount in physical.items()}


@dataclass(frozen=True)
class Policy:
    overcommit: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_OVERCOMMIT))
    ha: HaPolicy = field(default_factory=HaPolicy)


@dataclass(frozen=True)
class Cluster:
    """One snapshot: hosts, VMs with their current host, rules, policy and limits."""

    name: str
    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    rules: tuple[Rule, ...] = ()
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)

    @cached_property
    def host_by_name(self) -> Mapping[str, Host]:
        return {h.name: h for h in self.hosts}

    @cached_property
    def vm_by_name(self) -> Mapping[str, VM]:
        return {v.name: v for v in self.vms}

    @cached_property
    def resources(self) -> tuple[str, ...]:
        """Every resource named by a host or a VM, core ones first."""
        names = {r for h in self.hosts for r in h.capacity} | {
            r for v in self.vms for r in v.demand
        }
        extra = sorted(names - set(CORE_RESOURCES))
        return CORE_RESOURCES + tuple(extra)

    @cached_property
    def hard_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if not r.soft)

    @cached_property
    def soft_rules(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.soft)

    @cached_property
    def current_placement(self) -> Mapping[str, str | None]:
        return {v.name: v.host for v in self.vms}

    def moved_to(self, placement: Mapping[str, str | None]) -> Cluster:
        """The snapshot with each VM ``placement`` names on its host there (others stay)."""
        return self.replace_vms(replace(v, host=placement.get(v.name, v.host)) for v in self.vms)

    def replace_vms(self, vms: Iterable[VM]) -> Cluster:
        return Cluster(self.name, self.hosts, tuple(vms), self.rules, self.policy, self.limits)

    def replace_hosts(self, hosts: Iterable[Host]) -> Cluster:
        return Cluster(self.name, tuple(hosts), self.vms, self.rules, self.policy, self.limits)


def add_into(total: dict[str, int], amounts: Amounts, sign: int = 1) -> None:
    for resource, amount in amounts.items():
        total[resource] = total.get(resource, 0) + sign * amount


def fits(used: Amounts, demand: Amounts, capacity: Amounts) -> bool:
    return all(used.get(r, 0) + d <= capacity.get(r, 0) for r, d in demand.items() if d)


def host_loads(cluster: Cluster, placement: Mapping[str, str | None]) -> dict[str, dict[str, int]]:
    """Allocated amounts per host for a placement (VM name -> host name or None)."""
    loads: dict[str, dict[str, int]] = {h.name: {} for h in cluster.hosts}
    vms = cluster.vm_by_name
    for vm_name, host in placement.items():
        if host is not None:
            add_into(loads[host], vms[vm_name].demand)
    return loads


def active_hosts(placement: Mapping[str, str | None]) -> set[str]:
    return {h for h in placement.values() if h is not None}


def vms_by_host(placement: Mapping[str, str | None]) -> dict[str, list[str]]:
    by_host: dict[str, list[str]] = {}
    for vm_name, host in placement.items():
        if host is not None:
            by_host.setdefault(host, []).append(vm_name)
    return by_host


def iter_moves(
    before: Mapping[str, str | None], after: Mapping[str, str | None]
) -> Iterator[tuple[str, str | None, str]]:
    """(vm, from, to) for every VM whose host differs and that has a target host."""
    for vm_name, target in after.items():
        source = before.get(vm_name)
        if target is not None and target != source:
            yield vm_name, source, target
