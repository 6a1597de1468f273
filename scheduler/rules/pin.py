"""Pin: the VMs may only run on the listed hosts (licensing, hardware)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from scheduler.model import VM, Cluster, Host
from scheduler.rules.base import Penalty, PlacementView, Rule

if TYPE_CHECKING:
    from scheduler.solver.cpsat.encoding import Encoding


@dataclass(frozen=True)
class Pin(Rule):
    hosts: tuple[str, ...] = ()
    kind = "pin"

    def host_allowed(self, vm: VM, host: Host) -> bool:
        return self.soft or vm.name not in self.vms or host.name in self.hosts

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        return self.soft or vm not in self.vms or host in self.hosts

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        return [
            f"{self.label}: {vm} on {host}, allowed only on {', '.join(self.hosts)}"
            for vm in self.vms
            for host in sorted(view.hosts_of(vm))
            if host not in self.hosts
        ]

    def encode(self, enc: Encoding) -> list[Penalty]:
        # Hard pins are enforced by the host filter; soft ones cost per VM off its hosts.
        if not self.soft:
            return []
        outside = [
            enc.placed_on(vm, host)
            for vm in self.vms
            for host in enc.hosts_touching((vm,))
            if host not in self.hosts
        ]
        return [Penalty(sum(outside), self.weight)] if outside else []


@dataclass(frozen=True)
class Hold(Pin):
    """A VM kept where it is for now: one placed through the API and not running yet, or one
    that just moved. It binds plans; a host failure still restarts the VM elsewhere, so the
    HA reserve does not count it as pinned."""

    kind = "hold"
