"""Affinity: every VM of the group on one host. A group moves in a single wave, so that at
every moment some host holds all of its members (the moving ones are present on both)."""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.model import Cluster
from scheduler.rules.base import Penalty, PlacementView, Rule, RuleEncoding


@dataclass(frozen=True)
class Affinity(Rule):
    kind = "affinity"
    moves_together = True

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        if self.soft or vm not in self.vms:
            return True
        # Members already placed must all be reachable on this host.
        return all(
            host in view.hosts_of(other) or not view.hosts_of(other)
            for other in self.vms
            if other != vm
        )

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        placed = [set(view.hosts_of(vm)) for vm in self.vms if view.hosts_of(vm)]
        if placed and not set.intersection(*placed):
            where = ", ".join(f"{vm}@{'+'.join(sorted(view.hosts_of(vm)))}" for vm in self.vms)
            return [f"{self.label}: members apart ({where})"]
        return []

    def encode(self, enc: RuleEncoding) -> list[Penalty]:
        penalties = []
        first, *others = self.vms
        for other in others:
            for host in enc.hosts_touching((first, other)):
                a, b = enc.placed_on(first, host), enc.placed_on(other, host)
                if self.soft:
                    apart = enc.model.new_bool_var(f"af{self.position}_{other}_{host}")
                    enc.model.add(a <= b + apart)
                    enc.model.add(b <= a + apart)
                    penalties.append(Penalty(apart, self.weight))
                else:
                    enc.model.add(a == b)
        return penalties
