"""Anti-affinity: no two VMs of the group on the same host, also while one is migrating."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from scheduler.model import Cluster
from scheduler.rules.base import Penalty, PlacementView, Rule, RuleEncoding


@dataclass(frozen=True)
class AntiAffinity(Rule):
    kind = "anti-affinity"
    host_local = True

    def min_hosts(self, vms: Collection[str]) -> int:
        return 0 if self.soft else len(set(vms).intersection(self.vms))

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        if self.soft or vm not in self.vms:
            return True
        return not any(other in self.vms and other != vm for other in view.vms_on(host))

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        seen: dict[str, str] = {}
        found = []
        for vm in self.vms:
            for host in view.hosts_of(vm):
                if host in seen:
                    found.append(f"{self.label}: {seen[host]} and {vm} both on {host}")
                else:
                    seen[host] = vm
        return found

    def encode(self, enc: RuleEncoding) -> list[Penalty]:
        penalties = []
        for host in enc.hosts_touching(self.vms):
            together = enc.count_on(self.vms, host)
            if self.soft:
                excess = enc.model.new_int_var(0, len(self.vms), f"aa{self.position}_{host}")
                enc.model.add(together <= 1 + excess)
                penalties.append(Penalty(excess, self.weight))
            else:
                enc.model.add(together <= 1)
        return penalties
