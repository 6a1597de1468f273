"""What the metrics watch besides the snapshot: how long a running plan has been idle, and
the HA reserve, recomputed only when the cluster changes (a check fails every host in turn,
too slow to repeat at every scrape of a large cluster)."""

from __future__ import annotations

from collections.abc import Callable, Hashable

from scheduler.ha.reserve import HaReport
from scheduler.model import Cluster
from scheduler.service.records import OrderRecord
from scheduler.service.store import Store


class LastValue:
    """``compute(cluster)``, remembered until the cluster's fingerprint changes."""

    def __init__(self, compute: Callable[[Cluster], HaReport]) -> None:
        self.compute = compute
        self.key: Hashable = None
        self.value: HaReport | None = None

    def __call__(self, cluster: Cluster) -> HaReport:
        key = fingerprint(cluster)
        if self.value is None or key != self.key:
            self.key, self.value = key, self.compute(cluster)
        return self.value


def fingerprint(cluster: Cluster) -> Hashable:
    hosts = tuple(
        (h.name, h.state, tuple(sorted(h.capacity.items())), tuple(sorted(h.labels.items())))
        for h in cluster.hosts
    )
    vms = tuple((v.name, v.host, tuple(sorted(v.demand.items()))) for v in cluster.vms)
    return hosts, vms, cluster.policy.ha


def running_plan_idle_s(store: Store, orders: list[OrderRecord], now: float) -> float:
    """Seconds since the least recently active running plan last changed (an event or an
    order update); 0 when no plan runs."""
    last: dict[int, float] = {}
    for plan in store.plans():
        if plan.status == "running":
            events = store.plan_events(plan.id)
            last[plan.id] = max([plan.created_at, *(at for at, _ in events)])
    for order in orders:
        if order.plan_id in last:
            last[order.plan_id] = max(last[order.plan_id], order.updated_at)
    return max((now - at for at in last.values()), default=0.0)
