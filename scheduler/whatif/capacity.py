"""The answer to a capacity question: consolidate the (changed) snapshot with the production
engine, then measure what is left.

- hosts needed: active hosts after consolidation, beside the proven lower bound;
- headroom per resource over the hosts that stay on (active, plus any the HA reserve keeps);
- stranded capacity: free amounts no VM of the usual shape can use because another resource
  ran out on that host (free vCPUs on a host with no memory left, and so on). The usual shape
  is the mean demand of the cluster's VMs;
- whether the HA reserve holds (the policy's, else N+1), with the worst failure;
- the plan that gets there from today.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scheduler.engine import Outcome, decide_plan
from scheduler.ha.reserve import check_ha
from scheduler.model import CORE_RESOURCES, Cluster, Goal, HaPolicy, host_loads
from scheduler.solver.options import SearchOptions


@dataclass(frozen=True)
class Headroom:
    resource: str
    capacity: int
    allocated: int
    stranded: int

    @property
    def free(self) -> int:
        return self.capacity - self.allocated


@dataclass(frozen=True)
class Answer:
    outcome: Outcome
    hosts_on: tuple[str, ...]
    headroom: tuple[Headroom, ...]
    ha_policy: HaPolicy
    ha_holds: bool
    ha_worst: str  # "" when it holds

    @property
    def hosts_needed(self) -> int:
        return self.outcome.after.active_hosts


def answer(cluster: Cluster, options: SearchOptions) -> Answer:
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), options)
    placement = outcome.decision.placement
    target = outcome.cluster.moved_to(placement)
    off = set(outcome.power.power_off)
    on = tuple(h.name for h in target.hosts if h.accepts_vms and h.name not in off)
    policy = cluster.policy.ha if cluster.policy.ha.required else HaPolicy(1)
    report = check_ha(target, policy)
    worst = report.worst
    described = "" if report.satisfied or worst is None else (
        f"losing {worst.name} strands {len(worst.stranded)} VMs; "
        f"at least {worst.extra_hosts} more host(s) would cover them"
    )  # fmt: skip
    return Answer(outcome, on, headroom(target, on), policy, report.satisfied, described)


def headroom(cluster: Cluster, hosts: tuple[str, ...]) -> tuple[Headroom, ...]:
    loads = host_loads(cluster, cluster.current_placement)
    shape = _usual_shape(cluster)
    capacity = {r: 0 for r in CORE_RESOURCES}
    allocated = dict(capacity)
    stranded = dict(capacity)
    for name in hosts:
        host = cluster.host_by_name[name]
        free = {r: host.capacity.get(r, 0) - loads[name].get(r, 0) for r in CORE_RESOURCES}
        usable = min((free[r] / shape[r] for r in CORE_RESOURCES if shape[r]), default=0.0)
        for r in CORE_RESOURCES:
            capacity[r] += host.capacity.get(r, 0)
            allocated[r] += loads[name].get(r, 0)
            stranded[r] += max(0, int(free[r] - max(usable, 0.0) * shape[r]))
    return tuple(Headroom(r, capacity[r], allocated[r], stranded[r]) for r in CORE_RESOURCES)


def _usual_shape(cluster: Cluster) -> dict[str, float]:
    count = max(len(cluster.vms), 1)
    return {r: sum(v.demand.get(r, 0) for v in cluster.vms) / count for r in CORE_RESOURCES}


def answer_to_json(result: Answer) -> dict[str, Any]:
    summary = result.outcome.summary()
    return {
        "hosts_needed": result.hosts_needed,
        "hosts_lower_bound": summary["lower_bound"],
        "hosts_on": len(result.hosts_on),
        "vms_without_host": summary["unplaced_or_stranded"],
        "headroom": [
            {"resource": h.resource, "capacity": h.capacity, "allocated": h.allocated,
             "free": h.free, "stranded": h.stranded}
            for h in result.headroom
        ],
        "ha": {"host_failures_to_tolerate": result.ha_policy.host_failures_to_tolerate,
               "failure_domain": result.ha_policy.failure_domain,
               "holds": result.ha_holds, "worst": result.ha_worst},
        "plan": {"moves": summary["moves"], "placements": summary["placements"],
                 "waves": summary["steps"], "memory_moved_mib": summary["memory_moved_mib"]},
    }  # fmt: skip
