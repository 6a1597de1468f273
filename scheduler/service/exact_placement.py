"""The exact placement of new VMs: CP-SAT's ``place`` goal over the whole snapshot, with the
policy's rules (and a request's own) over the VMs that exist and the new ones, then the HA
admission check. What the fast path cannot decide: every placement under an HA policy, a
batch or rules the fast path could not fit one VM at a time, and every placement with
``--placement solver``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from scheduler.ha.reserve import admit_within_reserve
from scheduler.model import VM, Cluster, Goal
from scheduler.placement.explain import why_not_placed
from scheduler.rules import Hold, Pin, Rule
from scheduler.scenario.policy import LivePolicy
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide


@dataclass(frozen=True)
class NewVM:
    name: str
    demand: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0
    host_labels: Mapping[str, str] = field(default_factory=dict)  # only hosts that carry these


def hosts_labelled(cluster: Cluster, wanted: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(
        h.name for h in cluster.hosts if all(h.labels.get(k) == v for k, v in wanted.items())
    )


def asking(cluster: Cluster, vms: tuple[NewVM, ...], live: LivePolicy) -> Cluster:
    """The snapshot with the new VMs waiting for a host, and the rules over all of them: the
    policy's (with any the request brings), the snapshot's holds, and a pin for each new VM
    that asks for host labels."""
    new = [VM(v.name, dict(v.demand), labels=dict(v.labels), priority=v.priority) for v in vms]
    labels = {vm.name: dict(vm.labels) for vm in (*cluster.vms, *new)}
    rules: list[Rule] = list(live.rules_for(labels))
    rules += [r for r in cluster.rules if isinstance(r, Hold)]
    position = max((r.position for r in rules), default=0)
    for vm in vms:
        if vm.host_labels:
            position += 1
            rules.append(Pin(position, (vm.name,), hosts=hosts_labelled(cluster, vm.host_labels)))
    return replace(cluster.replace_vms([*cluster.vms, *new]), rules=tuple(rules))


def exact_placement(
    cluster: Cluster, vms: tuple[NewVM, ...], live: LivePolicy, workers: int
) -> tuple[dict[str, str] | None, str]:
    """A host for every new VM, within the HA reserve, or None and why not (all or none)."""
    problem = asking(cluster, vms, live)
    decision = decide(problem, Goal.PLACE, (), SearchOptions(SolverSettings(10.0, workers)))
    chosen = {v.name: decision.placement.get(v.name) for v in vms}
    admitted, refused = admit_within_reserve(problem, chosen)
    for vm in vms:
        if admitted.get(vm.name) is None:
            return None, refused.get(vm.name) or why_not_placed(
                problem, decision.placement, vm.name
            )
    return {vm: host for vm, host in admitted.items() if host is not None}, ""
