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
from types import MappingProxyType

VCPUS = "vcpus"
MEMORY = "memory_mib"
DISK = "disk_mib"
CORE_RESOURCES = (VCPUS, MEMORY, DISK)

Amounts = Mapping[str, int]


def frozen_map(items: Mapping[str, object] | None = None) -> MappingProxyType[str, object]:
    return MappingProxyType(dict(items or {}))


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


@dataclass(frozen=True)
class Policy:
    overcommit: Mapping[str, float] = field(
        default_factory=lambda: {VCPUS: 4.0, MEMORY: 1.0, DISK: 1.0}
    )
    ha: HaPolicy = field(default_factory=HaPolicy)


@dataclass(frozen=True)
class Cluster:
    """One snapshot: hosts, VMs with their current host, rules, policy and limits."""

    name: str
    hosts: tuple[Host, ...]
    vms: tuple[VM, ...]
    rules: tuple[object, ...] = ()  # scheduler.rules.Rule values; typed loosely to avoid a cycle
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
