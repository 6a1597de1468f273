"""Spread: at most ``max_per_domain`` of the selected VMs in each failure domain, a domain
being the hosts that share a value of ``label`` (rack, zone). A migrating VM counts in the
domains of both its source and its destination."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from scheduler.model import Cluster
from scheduler.rules.base import Penalty, PlacementView, Rule, RuleEncoding, RuleFields


@dataclass(frozen=True)
class Spread(Rule):
    label_key: str = "rack"
    max_per_domain: int = 1
    selector: dict[str, str] = field(default_factory=dict)
    kind = "spread"

    @classmethod
    def from_fields(cls, position: int, vms: tuple[str, ...], fields: RuleFields) -> Rule:
        return cls(
            position, vms, fields.soft, fields.weight,
            label_key=fields.label or "rack", max_per_domain=fields.max_per_domain or 1,
            selector=dict(fields.selector),
        )  # fmt: skip

    @property
    def label(self) -> str:
        wanted = ",".join(f"{k}={v}" for k, v in self.selector.items()) or "listed VMs"
        return f"spread #{self.position} ({wanted} over {self.label_key})"

    def domain(self, cluster: Cluster, host: str) -> str:
        return cluster.host_by_name[host].labels.get(self.label_key, "")

    def _domain_counts(self, cluster: Cluster, view: PlacementView, skip: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        for vm in self.vms:
            if vm != skip:
                counts.update({self.domain(cluster, h) for h in view.hosts_of(vm)})
        return counts

    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        if self.soft or vm not in self.vms:
            return True
        target = self.domain(cluster, host)
        if any(self.domain(cluster, h) == target for h in view.hosts_of(vm)):
            return True  # already counted in that domain
        return self._domain_counts(cluster, view, skip=vm)[target] + 1 <= self.max_per_domain

    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        counts = self._domain_counts(cluster, view, skip="")
        return [
            f"{self.label}: {count} VMs in {self.label_key}={domain}, at most {self.max_per_domain}"
            for domain, count in sorted(counts.items())
            if count > self.max_per_domain
        ]

    def encode(self, enc: RuleEncoding) -> list[Penalty]:
        by_domain: dict[str, list[str]] = {}
        for host in enc.cluster.hosts:
            by_domain.setdefault(self.domain(enc.cluster, host.name), []).append(host.name)
        penalties = []
        for domain, hosts in sorted(by_domain.items()):
            count = sum(enc.count_on(self.vms, host) for host in hosts)
            if isinstance(count, int) and count <= self.max_per_domain:
                continue
            if self.soft:
                excess = enc.model.new_int_var(0, len(self.vms), f"sp{self.position}_{domain}")
                enc.model.add(count <= self.max_per_domain + excess)
                penalties.append(Penalty(excess, self.weight))
            else:
                enc.model.add(count <= self.max_per_domain)
        return penalties
