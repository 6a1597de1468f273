"""Ban: the VMs must never run on the listed hosts."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.rules.host_list import HostListRule


@dataclass(frozen=True)
class Ban(HostListRule):
    kind = "ban"

    def allows(self, host: str) -> bool:
        return host not in self.hosts

    def refusal(self, vm: str, host: str) -> str:
        return f"{vm} on banned host {host}"
