"""Ban: the VMs must never run on the listed hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.model import VM, Cluster, Host
from scheduler.rules.base import Penalty, PlacementView, Rule

if TYPE_CHECKING:
    from scheduler.solver.cpsat.encoding import Encoding


@dataclass(frozen=True)
class Ban(Rule):
    hosts: tuple[str, ...] = ()
    kind = "ban"

    def host_allowed(self, vm: VM, host: Host) -> bool:
        return self.soft or vm.name not in self.vms or host.name not in self.hosts

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        return self.soft or vm not in self.vms or host not in self.hosts

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        return [
            f"{self.label}: {vm} on banned host {host}"
            for vm in self.vms
            for host in sorted(view.hosts_of(vm))
            if host in self.hosts
        ]

    def encode(self, enc: Encoding) -> list[Penalty]:
        if not self.soft:
            return []
        inside = [
            enc.placed_on(vm, host)
            for vm in self.vms
            for host in enc.hosts_touching((vm,))
            if host in self.hosts
        ]
        return [Penalty(sum(inside), self.weight)] if inside else []
