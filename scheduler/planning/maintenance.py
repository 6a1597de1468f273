"""Returning a host from maintenance: the VMs that left it go back, where they still fit.

The VMs are those its last evacuation moved off. Each goes back in that plan's order if the
host has room and every hard rule still allows it (something may have changed while the host
was away); the others stay where they run, each with the reason. The moves are ordered into
waves like any plan, so the return is safe at every step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from scheduler.engine import Outcome, outcome_of
from scheduler.model import Cluster, Goal
from scheduler.placement.state import PlacementState
from scheduler.planning.status import FINISHED
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.cpsat.solve import SolveStatus
from scheduler.solver.pipeline import Decision


def evacuated_from(host: str, plans: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The VMs that the last finished evacuation of ``host`` moved off it, in plan order;
    ``plans`` are (status, document), oldest first."""
    last: list[str] = []
    for status, document in plans:
        if status in FINISHED and host in document.get("evacuate", ()):
            last = [m["vm"] for m in document.get("migrations", ()) if m.get("from") == host]
    return last


def move_back(cluster: Cluster, host: str, vms: Sequence[str]) -> tuple[Outcome, dict[str, str]]:
    """The plan that returns as many of ``vms`` to ``host`` as fit, and why the others stay."""
    state = PlacementState(cluster, dict(cluster.current_placement))
    staying: dict[str, str] = {}
    for vm in vms:
        where = state.host_of(vm) if vm in cluster.vm_by_name else None
        if vm not in cluster.vm_by_name:
            staying[vm] = "no longer exists"
        elif where == host:
            continue
        elif where is None:
            staying[vm] = "not running on any host"
        elif not cluster.host_by_name[host].accepts_vms:
            staying[vm] = f"{host} is {cluster.host_by_name[host].state.value}"
        elif not state.can_take(vm, host):
            staying[vm] = f"{host} has no room for it now, or a hard rule forbids it"
        else:
            state.move(vm, where, host)
    placement = state.placement()
    bound = active_hosts_lower_bound(cluster)
    decision = Decision(Goal.BALANCE, cluster, placement, SolveStatus.OPTIMAL, bound, 0.0, "return")
    return outcome_of(decision, cluster.name), staying
