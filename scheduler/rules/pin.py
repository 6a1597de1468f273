"""Pin: the VMs may only run on the listed hosts (licensing, hardware)."""

from __future__ import annotations

from dataclasses import dataclass

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
