"""Mutable placement state for heuristics and the wave planner: loads and residents per host,
kept up to date incrementally, and the rules' incremental ``admits`` check."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from scheduler.model import Cluster, Host, fits
from scheduler.rules import Rule


class PlacementState:
    """Where each VM is present (one host, or two while it migrates) and each host's load."""

    def __init__(self, cluster: Cluster, placement: Mapping[str, str | None]) -> None:
        self.cluster = cluster
        self.presence: dict[str, set[str]] = {vm: set() for vm in placement}
        self.residents: dict[str, set[str]] = {h.name: set() for h in cluster.hosts}
        self.load: dict[str, dict[str, int]] = {h.name: {} for h in cluster.hosts}
        self.rules_of: dict[str, list[Rule]] = {}
        for rule in cluster.hard_rules:
            for vm in rule.vms:
                self.rules_of.setdefault(vm, []).append(rule)
        for vm, host in placement.items():
            if host is not None:
                self.add(vm, host)

    # PlacementView
    def hosts_of(self, vm: str) -> Collection[str]:
        return self.presence.get(vm, ())

    def vms_on(self, host: str) -> Collection[str]:
        return self.residents[host]

    def add(self, vm: str, host: str) -> None:
        self.presence.setdefault(vm, set()).add(host)
        self.residents[host].add(vm)
        load = self.load[host]
        for r, d in self.cluster.vm_by_name[vm].demand.items():
            load[r] = load.get(r, 0) + d

    def remove(self, vm: str, host: str) -> None:
        self.presence[vm].discard(host)
        self.residents[host].discard(vm)
        load = self.load[host]
        for r, d in self.cluster.vm_by_name[vm].demand.items():
            load[r] -= d

    def move(self, vm: str, source: str | None, target: str) -> None:
        if source is not None:
            self.remove(vm, source)
        self.add(vm, target)

    def host_of(self, vm: str) -> str | None:
        hosts = self.presence.get(vm)
        return next(iter(hosts)) if hosts else None

    def placement(self) -> dict[str, str | None]:
        return {vm: self.host_of(vm) for vm in self.presence}

    def has_room(self, vm: str, host: str, extra: Mapping[str, int] | None = None) -> bool:
        demand = self.cluster.vm_by_name[vm].demand
        used = self.load[host]
        if extra:
            used = {r: used.get(r, 0) + extra.get(r, 0) for r in set(used) | set(extra)}
        return fits(used, demand, self.cluster.host_by_name[host].capacity)

    def rules_admit(self, vm: str, host: str, moving_with_group: bool = False) -> bool:
        """Hard rules allow ``vm`` on ``host`` too. A VM ``moving_with_group`` moves in one
        wave with the VMs a rule ties it to, so that rule is judged on the whole group, not
        on this VM alone."""
        return all(
            rule.admits(self.cluster, vm, host, self)
            for rule in self.rules_of.get(vm, ())
            if not (moving_with_group and rule.wave_group)
        )

    def rules_allow(self, vm: str, host: str) -> bool:
        """Static filters and hard rules, with ``vm`` added to where it is now."""
        target = self.cluster.host_by_name[host]
        rules = self.rules_of.get(vm, ())
        return statically_allowed(self.cluster, vm, target, rules) and self.rules_admit(vm, host)

    def can_take(self, vm: str, host: str) -> bool:
        """Host state, room, filters and hard rules, with ``vm`` added to where it is now:
        the one check of a single host that every heuristic uses."""
        return (
            self.cluster.host_by_name[host].accepts_vms
            and self.has_room(vm, host)
            and self.rules_allow(vm, host)
        )


def statically_allowed(cluster: Cluster, vm: str, host: Host, rules: Collection[Rule]) -> bool:
    spec = cluster.vm_by_name[vm]
    return fits({}, spec.demand, host.capacity) and all(r.host_allowed(spec, host) for r in rules)
