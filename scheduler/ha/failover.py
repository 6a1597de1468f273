"""Failover: restart the VMs of failed hosts on the survivors, highest priority first.

The failed hosts are marked down and their VMs are nowhere until restarted. Priority classes
are placed one at a time, highest first, with the ``place`` goal (capacity after overcommit,
host state, every hard rule; nothing already running moves) while lower classes are left out
of the model, so a VM never takes the room of one with a higher priority. Each VM that still
finds no host is reported with the reason. VMs that were waiting for a host before the failure
are not failover's business and are left out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from scheduler.engine import Outcome, outcome_of
from scheduler.model import VM, Cluster, Goal, HostState
from scheduler.placement.explain import why_not_placed
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolveStatus, budget_of
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import Decision, decide


@dataclass(frozen=True)
class Failover:
    outcome: Outcome
    failed_hosts: tuple[str, ...]
    restarts: dict[str, str]  # VM -> the host it restarts on
    not_restarted: dict[str, str]  # VM -> why no host takes it


def hosts_in_domain(cluster: Cluster, label: str, value: str) -> tuple[str, ...]:
    return tuple(h.name for h in cluster.hosts if h.labels.get(label) == value)


def decide_failover(
    cluster: Cluster,
    failed: Collection[str],
    options: SearchOptions | None = None,
    budget: Budget | None = None,
) -> Failover:
    """Where the VMs of the failed hosts restart, the highest priority first; the levels of
    priority share the budget (by default the options' time limit, from now)."""
    options = options or SearchOptions()
    budget = budget or budget_of(options.solver)
    snapshot = after_failure(cluster, failed)
    down = {h.name for h in snapshot.hosts if h.state is HostState.DOWN}
    victims = [v for v in snapshot.vms if v.host in down]
    restarts: dict[str, str] = {}
    statuses = []
    levels = sorted({v.priority for v in victims}, reverse=True)
    for done, priority in enumerate(levels):
        later = {v.name for v in victims if v.priority < priority}
        view = snapshot.replace_vms(
            _restarted(v, restarts) for v in snapshot.vms if v.name not in later
        )
        share = budget.share(budget.left() / (len(levels) - done))
        decision = decide(view, Goal.PLACE, (), options, share)
        statuses.append(decision.status)
        for vm in victims:
            host = decision.placement.get(vm.name)
            if vm.priority == priority and host is not None and host not in down:
                restarts[vm.name] = host
    placement = {v.name: restarts.get(v.name) if v.host in down else v.host for v in snapshot.vms}
    status = SolveStatus.OPTIMAL
    if any(s is not SolveStatus.OPTIMAL for s in statuses):
        status = SolveStatus.FEASIBLE
    bound = active_hosts_lower_bound(snapshot, [vm for vm, h in placement.items() if h])
    decision = Decision(Goal.PLACE, snapshot, placement, status, bound, budget.spent(), "failover")
    missing = {
        v.name: why_not_placed(snapshot, placement, v.name)
        for v in victims
        if v.name not in restarts
    }
    outcome = outcome_of(decision, cluster.name)
    return Failover(outcome, tuple(sorted(failed)), restarts, missing)


def after_failure(cluster: Cluster, failed: Collection[str]) -> Cluster:
    """The snapshot failover decides on: failed hosts down, waiting VMs left out."""
    hosts = [replace(h, state=HostState.DOWN) if h.name in failed else h for h in cluster.hosts]
    return cluster.replace_hosts(hosts).replace_vms(v for v in cluster.vms if v.host is not None)


def _restarted(vm: VM, restarts: dict[str, str]) -> VM:
    """A VM restarted in an earlier (higher) class runs where it restarted: it stays put."""
    return replace(vm, host=restarts[vm.name]) if vm.name in restarts else vm
