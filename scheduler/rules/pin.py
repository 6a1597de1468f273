"""Pin: the VMs may only run on the listed hosts (licensing, hardware)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from scheduler.model import Cluster
from scheduler.rules.host_list import HostListRule


@dataclass(frozen=True)
class Pin(HostListRule):
    kind = "pin"

    def allows(self, host: str) -> bool:
        return host in self.hosts

    def refusal(self, vm: str, host: str) -> str:
        return f"{vm} on {host}, allowed only on {', '.join(self.hosts)}"


@dataclass(frozen=True)
class Hold(Pin):
    """A VM kept where it is for now: one placed through the API and not running yet, or one
    that just moved. It binds plans; a host failure still restarts the VM elsewhere, so the
    HA reserve does not count it as pinned."""

    kind = "hold"
    binds_restarts = False


def held_in_place(cluster: Cluster, vms: Collection[str]) -> Cluster:
    """The cluster with each of ``vms`` held on the host it runs on now."""
    rules = list(cluster.rules)
    position = len(rules)
    for vm in sorted(vms):
        host = cluster.vm_by_name[vm].host if vm in cluster.vm_by_name else None
        if host is not None:
            position += 1
            rules.append(Hold(position, (vm,), hosts=(host,)))
    return replace(cluster, rules=tuple(rules))
