"""What pin and ban share: a rule over a list of hosts, decided by the host alone.

A hard one is a static filter (the solver creates no variable for a host it forbids); a
soft one costs its weight for each VM on a host it would forbid."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

from scheduler.model import VM, Cluster, Host
from scheduler.rules.base import Penalty, PlacementView, Rule, RuleEncoding, RuleFields


@dataclass(frozen=True)
class HostListRule(Rule):
    hosts: tuple[str, ...] = ()
    only_filters_hosts = True
    host_local = True

    @classmethod
    def from_fields(cls, position: int, vms: tuple[str, ...], fields: RuleFields) -> Rule:
        return cls(position, vms, fields.soft, fields.weight, hosts=tuple(fields.hosts))

    @abstractmethod
    def allows(self, host: str) -> bool:
        """May the rule's VMs run on ``host``?"""

    @abstractmethod
    def refusal(self, vm: str, host: str) -> str:
        """The sentence for ``vm`` found on a host the rule forbids."""

    @property
    def named_hosts(self) -> tuple[str, ...]:
        return self.hosts

    def host_allowed(self, vm: VM, host: Host) -> bool:
        return self.soft or vm.name not in self.vms or self.allows(host.name)

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        return self.soft or vm not in self.vms or self.allows(host)

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        return [
            f"{self.label}: {self.refusal(vm, host)}"
            for vm in self.vms
            for host in sorted(view.hosts_of(vm))
            if not self.allows(host)
        ]

    def encode(self, enc: RuleEncoding) -> list[Penalty]:
        # Hard ones are enforced by the host filter; soft ones cost per VM on a wrong host.
        if not self.soft:
            return []
        wrong = [
            enc.placed_on(vm, host)
            for vm in self.vms
            for host in enc.hosts_touching((vm,))
            if not self.allows(host)
        ]
        return [Penalty(sum(wrong), self.weight)] if wrong else []
