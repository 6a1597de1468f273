"""A running scheduler: the store, the cluster as the agents report it, the metrics, the
executor and the background loops. ``Runtime`` is the one place that wires them, starts them
and stops them; ``server.Server`` puts the API in front of it, for ``vmpack serve`` and the
tests alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from agents.report import HostReport
from scheduler.ha.reserve import check_ha
from scheduler.metrics import ClusterView, SchedulerMetrics
from scheduler.model import Cluster, HostState, Limits, Policy
from scheduler.placement.state import PlacementState
from scheduler.planning.autopilot import AutomationPolicy
from scheduler.scenario.policy import LivePolicy, policy_from_data
from scheduler.service.auth import Tokens
from scheduler.service.executor import ExecutionPolicy, Executor
from scheduler.service.group_commit import GroupCommit
from scheduler.service.inventory import Inventory, rules_now, snapshot
from scheduler.service.leadership import Leadership, default_instance
from scheduler.service.live_inventory import LiveInventory
from scheduler.service.liveness import Heartbeat
from scheduler.service.loops.autopilot import Autopilot
from scheduler.service.loops.failover import FailoverWatch, FencingPolicy
from scheduler.service.loops.power import PowerControl, PowerPolicy
from scheduler.service.loops.reserve_cache import LastValue, running_plan_idle_s
from scheduler.service.placer import PlacementPath, Placer
from scheduler.service.store import Store
from scheduler.solver.cpsat.solve import SolverSettings, SolveStatus
from scheduler.solver.options import SearchOptions


@dataclass
class ServiceConfig:
    tokens: Tokens
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    solver_workers: int = 0
    clock: Callable[[], float] = time.time
    execution: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    fencing: FencingPolicy = field(default_factory=FencingPolicy)
    automation: AutomationPolicy = field(default_factory=AutomationPolicy)
    failover_tick_s: float = 1.0
    power: PowerPolicy = field(default_factory=PowerPolicy)
    power_tick_s: float = 60.0
    claim_ttl_s: float = 900.0  # how long a placement holds room for a VM not yet reported
    placement: PlacementPath = PlacementPath.FAST
    # A policy file given at start (``--policy``): kept as a new version when it differs from
    # the newest one stored. Without it, the stored policy, else ``policy`` and ``limits``.
    policy_file: LivePolicy | None = None
    policy_source: str = ""
    # Several schedulers on one PostgreSQL database: who this one is, where others send the
    # writes it takes while it leads, and how long its lease lasts unless renewed.
    instance: str = field(default_factory=default_instance)
    advertise_url: str = ""
    lease_s: float = 10.0


class Runtime:
    """The service's parts, wired once. Nothing runs until ``start``; ``stop`` ends the
    loops and the executor (running plans stay ``running`` and resume at the next start)."""

    def __init__(self, config: ServiceConfig, store: Store) -> None:
        self.config, self.store = config, store
        self.started_at = config.clock()
        self._policy_lock = threading.Lock()
        self.policy, self.policy_version = self._starting_policy()
        self.writes = GroupCommit(store.together)  # reports and claims, a sync per batch
        self.live = LiveInventory(config.heartbeat, self.started_at, self.policy.policy.overcommit)
        ended = self.live.load(store.reports(), store.host_states(), store.claims(config.clock()))
        store.drop_claims(ended)
        self._stale = False  # just read from the store: leading at once needs no reload
        self._snapshot_lock = threading.Lock()
        self._snapshot: tuple[object, Inventory] | None = None
        self._ha_reports = LastValue(check_ha)
        self.metrics = SchedulerMetrics(self._view)
        self.leadership = Leadership(
            store, config.instance, config.advertise_url, config.lease_s, config.clock,
            self._gained, self._lost, self._follow,
        )  # fmt: skip
        self.metrics.watch_leadership(self.leadership.leads, lambda: self.leadership.epoch)
        self.executor = Executor(
            store, self.cluster, config.clock, config.execution, self.host_details,
            on_outcome=self.metrics.order_finished, may_issue=self.leadership.leads,
            epoch=lambda: self.leadership.epoch,
        )  # fmt: skip
        self.failover = FailoverWatch(
            store, self.cluster, self.down_hosts, config.clock, config.fencing,
            self.executor.start, lambda outcome: self.metrics.fencing.labels(outcome).inc(),
            SearchOptions(SolverSettings(10.0, config.solver_workers)),
        )  # fmt: skip
        self.power = PowerControl(
            store, self.cluster, config.power,
            lambda action, outcome: self.metrics.power.labels(action, outcome).inc(),
            config.clock, self.set_host_state,
        )  # fmt: skip
        self.failover.need_room = self.power.power_on
        self.autopilot = Autopilot(
            store, self.cluster, config.clock, config.automation, self.executor.start,
            lambda goal, outcome: self.metrics.plan_decided(
                goal, outcome.decision.seconds, outcome.summary()["gap"],
                outcome.decision.status is SolveStatus.OPTIMAL,
            ),
            SearchOptions(SolverSettings(30.0, config.solver_workers)),
        )  # fmt: skip
        self.executor.replan = self.autopilot.replan
        self.placer = Placer(
            self.live, store, self.writes, lambda: self.policy, self.cluster, config.clock,
            self.power.power_on, config.claim_ttl_s, config.placement, config.solver_workers,
        )  # fmt: skip

    # -- the cluster policy ----------------------------------------------------------------

    def _starting_policy(self) -> tuple[LivePolicy, int]:
        given, stored = self.config.policy_file, self.store.policy()
        if given is not None:
            if stored is not None and stored.document == given.document:
                return given, stored.version
            by = f"--policy {self.config.policy_source}".strip()
            return given, self.store.add_policy(given.document, self.config.clock(), by)
        if stored is not None:
            return policy_from_data(stored.document, f"stored policy {stored.version}"), (
                stored.version
            )
        return LivePolicy(self.config.policy, self.config.limits, (), {}), 0

    def set_policy(self, policy: LivePolicy, by: str) -> int:
        """Enforce ``policy`` from the next decision on; returns its version number."""
        with self._policy_lock:
            version = self.store.add_policy(policy.document, self.config.clock(), by)
            self.policy, self.policy_version = policy, version
            self.live.set_overcommit(policy.policy.overcommit)
        return version

    # -- what the agents and operators say -----------------------------------------------

    def accept_report(self, report: HostReport) -> Future[None]:
        """Take an agent's report: at once in memory (the claims of VMs this host now runs
        end with it), and in the store with the next batch; done once on disk."""
        at = self.config.clock()
        ended = self.live.apply_report(report, at)

        def write() -> None:
            self.store.save_report(report, at)
            self.store.drop_claims(ended)

        return self.writes.submit(write)

    def forget_identity(self, host: str) -> bool:
        """The libvirt host UUID recorded for this host name is forgotten: the next report
        under the name sets it. False if no host has this name."""
        held = self.live.forget_identity(host)
        if held is not None:
            self.writes.submit(lambda: self.store.save_report(*held)).result()
        return held is not None

    def set_host_state(self, host: str, state: HostState) -> None:
        self.store.set_host_state(host, state)
        self.live.set_state(host, state)

    # -- what the cluster looks like now -------------------------------------------------

    def liveness(self, chosen: HostState, reported_at: float, now: float) -> HostState:
        # A scheduler that was itself away has heard nothing for a while: every host gets
        # the full time from its start before it can be taken for down (and fenced).
        return self.config.heartbeat.state(chosen, max(reported_at, self.started_at), now)

    def current(self) -> tuple[Cluster, dict[str, float]]:
        """The snapshot from the latest reports, and each host's report age in seconds."""
        inventory, ages = self.inventory()
        return inventory.cluster, ages

    def inventory(self) -> tuple[Inventory, dict[str, float]]:
        """The snapshot with its conflicts, and each host's report age in seconds; built
        again only when a report, a host state, a claim or the policy changed since."""
        now = self.config.clock()
        live = self.live
        with live.lock:
            live.expire(now)
            reports, chosen = live.reports(), live.states()
            claims = list(live.claims.values())
            version = live.version
        ages = {r.host: now - at for r, at in reports}
        states = {
            r.host: self.liveness(chosen.get(r.host, HostState.UP), at, now) for r, at in reports
        }
        key = (version, self.policy_version, tuple(states.values()))
        with self._snapshot_lock:
            if self._snapshot is not None and self._snapshot[0] == key:
                return self._snapshot[1], ages
            policy, hosts = self.policy, [r for r, _ in reports]
            inventory = snapshot(
                hosts, states, policy.policy, rules_now(policy, hosts, claims), policy.limits,
                claims=claims,
            )  # fmt: skip
            self._snapshot = (key, inventory)
            return inventory, ages

    def cluster(self) -> Cluster:
        return self.current()[0]

    def down_hosts(self) -> set[str]:
        """Cheap: from report times alone (the failover watch asks every second)."""
        now = self.config.clock()
        chosen = self.live.states()
        return {
            h for h, at in self.live.report_times().items()
            if self.liveness(chosen.get(h, HostState.UP), at, now) is HostState.DOWN
        }  # fmt: skip

    def host_details(self, host: str) -> dict[str, Any]:
        """Where migrations to ``host`` go, as its agent reported."""
        report = self.live.report_of(host)
        if report is None:
            return {}
        return {"target_uri": report.libvirt_uri, "migration_address": report.migration_address}

    def _view(self) -> ClusterView:
        inventory, ages = self.inventory()
        cluster = inventory.cluster
        counts: dict[str, int] = {}
        for plan in self.store.plans():
            counts[plan.status] = counts.get(plan.status, 0) + 1
        orders = self.store.orders()
        in_flight = sum(1 for o in orders if o.status in ("pending", "running"))
        idle = running_plan_idle_s(self.store, orders, self.config.clock())
        ha = self._ha_reports(cluster) if cluster.policy.ha.required else None
        unfenced = sum(1 for f in self.store.fencing().values() if f.status == "failed")
        conflicts = len(inventory.conflicts)
        view = PlacementState(cluster, cluster.current_placement)
        broken: dict[str, int] = {}
        for rule in cluster.rules:
            if rule.binds_restarts:  # the policy's rules, not the holds of the moment
                broken[rule.kind] = broken.get(rule.kind, 0) + len(rule.violations(cluster, view))
        return ClusterView(
            cluster, ages, counts, in_flight, idle, ha, unfenced, conflicts, self.policy_version,
            broken,
        )  # fmt: skip

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """Take part in leadership: a scheduler alone on its store leads at once, resumes
        running plans and starts the background loops; a standby answers reads."""
        self.leadership.start()

    def stop(self) -> None:
        """Give the lease up (the loops and the executor stop with it); the store stays
        open. Running plans stay ``running`` for the next leader."""
        self.leadership.stop()
        self.executor.shutdown()
        self.writes.close()

    def _gained(self, epoch: int) -> None:
        """This scheduler leads now: what the last leader left in the store is the truth."""
        self.metrics.leadership_changes.labels("gained").inc()
        self.store.restamp_pending_orders(epoch)
        if self._stale:
            self.reload()
        self.executor.resume()
        self.failover.start(self.config.failover_tick_s)
        self.power.start(self.config.power_tick_s)
        self.autopilot.start(self.config.failover_tick_s)

    def _lost(self, reason: str) -> None:
        """No longer leading (deposed, the store out of reach, stopping): no new order, no
        fencing, no power action from here on."""
        self.metrics.leadership_changes.labels("lost").inc()
        self._stale = True
        self.failover.stop()
        self.power.stop()
        self.autopilot.stop()
        self.executor.pause()

    def _follow(self) -> None:
        """A standby's tick: fresh reads now, and another scheduler writes meanwhile."""
        self.reload()
        self._stale = True

    def reload(self) -> None:
        """The inventory and policy again from the store: a standby keeps its reads fresh
        this way, and a new leader starts from what the old one wrote."""
        live = LiveInventory(self.config.heartbeat, self.started_at, {})
        live.load(self.store.reports(), self.store.host_states(),
                  self.store.claims(self.config.clock()))  # fmt: skip
        stored = self.store.policy()
        with self._policy_lock:
            if stored is not None and stored.version != self.policy_version:
                self.policy = policy_from_data(stored.document, f"stored policy {stored.version}")
                self.policy_version = stored.version
            live.set_overcommit(self.policy.policy.overcommit)
            self.live = self.placer.inventory = live
        with self._snapshot_lock:
            self._snapshot = None
