"""Every metric the scheduler exports, in one place.

One prefix (``vmpack_``), units in names, low-cardinality labels (resource, state, goal,
outcome; ``host`` only on per-host capacity series), counters created at zero for every label
value so dashboards never show "no data". Cluster gauges come from a collector that reads the
current snapshot at scrape time, so they can never go stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from scheduler.ha.reserve import HaReport
from scheduler.model import Cluster, HostState, active_hosts, host_loads, vms_by_host
from scheduler.planning.status import PlanStatus
from scheduler.rules import RULE_TYPES

REPORT_OUTCOMES = ("accepted", "rejected", "identity_conflict")
GOALS = ("place", "consolidate", "balance", "evacuate", "repair", "failover")
MIGRATION_OUTCOMES = ("succeeded", "failed")


@dataclass(frozen=True)
class ClusterView:
    cluster: Cluster
    report_age_s: dict[str, float]
    plans_by_status: dict[str, int]
    migrations_in_flight: int = 0
    running_plan_idle_s: float = 0.0  # since the least recent progress of a running plan
    ha: HaReport | None = None  # None: no reserve configured
    hosts_fencing_failed: int = 0
    vm_conflicts: int = 0  # VMs seen running on two hosts
    policy_version: int = 0  # of the cluster policy in force; 0: none applied
    rule_violations: Mapping[str, int] = field(default_factory=dict)  # rule type -> how many


class SchedulerMetrics:
    def __init__(self, view: Callable[[], ClusterView]) -> None:
        self.registry = CollectorRegistry()
        self.leader = Gauge(
            "vmpack_leader", "1 while this scheduler leads (holds the lease, may order moves)",
            registry=self.registry,
        )  # fmt: skip
        self.leader_epoch = Gauge(
            "vmpack_leader_epoch", "The epoch this scheduler leads in, 0 while it does not",
            registry=self.registry,
        )  # fmt: skip
        self.leadership_changes = Counter(
            "vmpack_leadership_changes", "This scheduler gained or lost the lead", ["change"],
            registry=self.registry,
        )  # fmt: skip
        for change in ("gained", "lost"):
            self.leadership_changes.labels(change)
        self.reports = Counter(
            "vmpack_reports_received", "Agent reports received", ["outcome"], registry=self.registry
        )
        for outcome in REPORT_OUTCOMES:
            self.reports.labels(outcome)
        self.solver_seconds = Histogram(
            "vmpack_solver_seconds", "Time to decide a plan", ["goal"], registry=self.registry,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )  # fmt: skip
        self.plans_created = Counter(
            "vmpack_plans_created", "Plans created", ["goal"], registry=self.registry
        )
        self.solver_gap = Gauge(
            "vmpack_solver_gap_ratio",
            "Active hosts of the last plan above the proven lower bound, relative to the bound",
            ["goal"], registry=self.registry,
        )  # fmt: skip
        self.solver_time_limit = Counter(
            "vmpack_solver_time_limit_reached",
            "Plans whose search stopped at its time limit before proving the best answer",
            ["goal"], registry=self.registry,
        )  # fmt: skip
        for goal in GOALS:
            self.solver_seconds.labels(goal)
            self.plans_created.labels(goal)
            self.solver_gap.labels(goal)
            self.solver_time_limit.labels(goal)
        self.migrations = Counter(
            "vmpack_migrations", "Live migrations by outcome", ["outcome"], registry=self.registry
        )
        self.restarts = Counter(
            "vmpack_restarts", "VMs of failed hosts restarted elsewhere, by outcome",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.fencing = Counter(
            "vmpack_fencing", "Fencing of down hosts by outcome", ["outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.power = Counter(
            "vmpack_power_actions", "Hosts switched off (standby) or on, by outcome",
            ["action", "outcome"], registry=self.registry,
        )  # fmt: skip
        for outcome in MIGRATION_OUTCOMES:
            self.power.labels("off", outcome)
            self.power.labels("on", outcome)
            self.migrations.labels(outcome)
            self.restarts.labels(outcome)
            self.fencing.labels(outcome)
        self.migration_seconds = Histogram(
            "vmpack_migration_seconds", "Duration of successful live migrations",
            registry=self.registry, buckets=(1, 2, 5, 10, 30, 60, 120, 300),
        )  # fmt: skip
        self.migration_downtime = Histogram(
            "vmpack_migration_downtime_seconds", "Guest downtime of live migrations (libvirt job)",
            registry=self.registry, buckets=(0.01, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
        )  # fmt: skip
        self.registry.register(_ClusterCollector(view))

    def watch_leadership(self, leads: Callable[[], bool], epoch: Callable[[], int]) -> None:
        """Read at every scrape: a lead lost between two renewals shows at once."""
        self.leader.set_function(lambda: 1.0 if leads() else 0.0)
        self.leader_epoch.set_function(lambda: float(epoch()) if leads() else 0.0)

    def order_finished(self, kind: str, outcome: str) -> None:
        (self.restarts if kind == "restart" else self.migrations).labels(outcome).inc()

    def plan_decided(self, goal: str, seconds: float, gap: float, proven: bool) -> None:
        self.solver_seconds.labels(goal).observe(seconds)
        self.plans_created.labels(goal).inc()
        self.solver_gap.labels(goal).set(gap)
        if not proven:
            self.solver_time_limit.labels(goal).inc()


class _ClusterCollector(Collector):
    def __init__(self, view: Callable[[], ClusterView]) -> None:
        self.view = view

    def collect(self) -> Iterator[GaugeMetricFamily]:
        view = self.view()
        cluster = view.cluster
        placement = cluster.current_placement
        residents = vms_by_host(placement)
        states = GaugeMetricFamily("vmpack_hosts", "Hosts by state", labels=["state"])
        for state in HostState:
            states.add_metric([state.value], sum(1 for h in cluster.hosts if h.state is state))
        yield states
        yield GaugeMetricFamily(
            "vmpack_active_hosts", "Hosts running VMs", value=len(active_hosts(placement))
        )
        yield GaugeMetricFamily(
            "vmpack_empty_hosts",
            "Up hosts running no VM: candidates for powering off",
            value=sum(1 for h in cluster.hosts if h.accepts_vms and not residents.get(h.name)),
        )
        yield GaugeMetricFamily("vmpack_vms", "VMs known to the scheduler", value=len(cluster.vms))
        per_host = GaugeMetricFamily(
            "vmpack_host_state", "1 for the state each host is in", labels=["host", "state"]
        )
        for host in cluster.hosts:
            for state in HostState:
                per_host.add_metric([host.name, state.value], float(host.state is state))
        yield per_host
        yield from _capacity_families(cluster)
        age = GaugeMetricFamily(
            "vmpack_agent_report_age_seconds", "Age of the last report", labels=["host"]
        )
        for name, seconds in sorted(view.report_age_s.items()):
            age.add_metric([name], seconds)
        yield age
        plans = GaugeMetricFamily("vmpack_plans", "Plans by status", labels=["status"])
        for status in PlanStatus:
            plans.add_metric([status], view.plans_by_status.get(status, 0))
        yield plans
        yield GaugeMetricFamily(
            "vmpack_migrations_in_flight",
            "Migration orders not finished",
            value=view.migrations_in_flight,
        )
        yield GaugeMetricFamily(
            "vmpack_running_plan_idle_seconds",
            "Seconds since a running plan last made progress (0: none running)",
            value=view.running_plan_idle_s,
        )
        yield from _ha_families(view.ha)
        down = {h.name for h in cluster.hosts if h.state is HostState.DOWN}
        yield GaugeMetricFamily(
            "vmpack_vms_on_down_hosts",
            "VMs whose host is down: not running anywhere until restarted",
            value=sum(1 for v in cluster.vms if v.host in down),
        )
        yield GaugeMetricFamily(
            "vmpack_hosts_fencing_failed",
            "Down hosts whose fencing failed: their VMs are not restarted",
            value=view.hosts_fencing_failed,
        )
        yield GaugeMetricFamily(
            "vmpack_vm_conflicts",
            "VMs seen running on two hosts (or one domain UUID under two names): held, not moved",
            value=view.vm_conflicts,
        )
        yield GaugeMetricFamily(
            "vmpack_policy_version",
            "Version of the cluster policy in force (rules, ratios, HA, limits); 0: the defaults",
            value=view.policy_version,
        )
        broken = GaugeMetricFamily(
            "vmpack_rule_violations",
            "Ways the current placement breaks the policy's rules, by rule type",
            labels=["type"],
        )
        for kind in RULE_TYPES:
            broken.add_metric([kind], view.rule_violations.get(kind, 0))
        yield broken


def _ha_families(report: HaReport | None) -> Iterator[GaugeMetricFamily]:
    failures = report.failures if report else ()
    yield GaugeMetricFamily(
        "vmpack_ha_reserve_satisfied",
        "1 if the VMs of every failure the HA policy names restart on the survivors",
        value=float(report is None or report.satisfied),
    )
    worst = report.worst if report else None
    yield GaugeMetricFamily(
        "vmpack_ha_stranded_vms",
        "VMs the worst failure the HA policy names would leave without a host",
        value=len(worst.stranded) if worst else 0,
    )
    yield GaugeMetricFamily(
        "vmpack_ha_failures_stranding_vms",
        "Failures the HA policy names that would strand VMs",
        value=sum(1 for f in failures if f.stranded),
    )
    yield GaugeMetricFamily(
        "vmpack_ha_hosts_short",
        "Hosts of the largest model the worst failure would still need",
        value=worst.extra_hosts if worst else 0,
    )


def _capacity_families(cluster: Cluster) -> Iterator[GaugeMetricFamily]:
    loads = host_loads(cluster, cluster.current_placement)
    capacity = GaugeMetricFamily(
        "vmpack_host_capacity", "Allocatable amount (after overcommit)", labels=["host", "resource"]
    )
    allocated = GaugeMetricFamily(
        "vmpack_host_allocated", "Allocated to VMs", labels=["host", "resource"]
    )
    vms = GaugeMetricFamily("vmpack_host_vms", "VMs on the host", labels=["host"])
    residents = vms_by_host(cluster.current_placement)
    for host in cluster.hosts:
        for resource in cluster.resources:
            capacity.add_metric([host.name, resource], host.capacity.get(resource, 0))
            allocated.add_metric([host.name, resource], loads[host.name].get(resource, 0))
        vms.add_metric([host.name], len(residents.get(host.name, ())))
    yield capacity
    yield allocated
    yield vms
