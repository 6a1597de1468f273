"""Why a VM has no host: every host that was excluded, grouped by the reason.

"Cannot place" is a result with a diagnosis, not an exception: for each VM left without a
host (or stuck on one it must leave) we test each other host against, in order, its state,
the static filters (pin, ban, size), the hard rules given where everything else ends up, and
the room left there. A VM that fits nowhere because of hard rules names those rules.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping

from scheduler.model import Cluster, fits
from scheduler.placement.state import PlacementState
from scheduler.rules import Rule
from scheduler.units import format_mib


def why_not_placed(cluster: Cluster, placement: Mapping[str, str | None], vm: str) -> str:
    state = PlacementState(cluster, {v: h for v, h in placement.items() if v != vm})
    spec = cluster.vm_by_name[vm]
    reasons: dict[str, list[str]] = defaultdict(list)
    for host in cluster.hosts:
        if host.name == placement.get(vm):
            continue
        reasons[_reason(cluster, state, vm, host.name)].append(host.name)
    reasons.pop("", None)
    need = ", ".join(amount_text(r, a) for r, a in spec.demand.items() if a)
    return f"{vm} (needs {need}): " + (hosts_excluded(reasons) or "no host is usable")


def hosts_excluded(reasons: Mapping[str, list[str]]) -> str:
    """Hosts grouped by why they are excluded, the commonest first: "3 hosts lack free
    memory_mib (h1, h2, h3); 1 host is down (h4)". Each reason is worded for several hosts
    ("are ...", "lack ...")."""
    parts = []
    for why, hosts in sorted(reasons.items(), key=lambda kv: -len(kv[1])):
        worded = why
        if len(hosts) == 1:
            verb, _, rest = why.partition(" ")
            worded = f"{ONE_HOST.get(verb, verb)} {rest}"
        parts.append(
            f"{len(hosts)} host{'s' if len(hosts) > 1 else ''} {worded} ({some_names(hosts)})"
        )
    return "; ".join(parts)


ONE_HOST = {"are": "is", "lack": "lacks"}


def _reason(cluster: Cluster, state: PlacementState, vm: str, host_name: str) -> str:
    host = cluster.host_by_name[host_name]
    spec = cluster.vm_by_name[vm]
    if not host.accepts_vms:
        return f"are {host.state.value}"
    if not fits({}, spec.demand, host.capacity):
        short = [r for r, a in spec.demand.items() if a > host.capacity.get(r, 0)]
        return f"are too small in {', '.join(short)}"
    rules = [r for r in cluster.hard_rules if r.concerns(vm)]
    for rule in rules:
        if not rule.host_allowed(spec, host) or not rule.admits(cluster, vm, host_name, state):
            return f"excluded by {rule.label}"
    if not state.has_room(vm, host_name):
        load = state.load[host_name]
        short = [r for r, a in spec.demand.items() if load.get(r, 0) + a > host.capacity.get(r, 0)]
        return f"lack free {', '.join(short)}"
    return ""


def amount_text(resource: str, amount: int) -> str:
    if resource.endswith("_mib"):
        return f"{format_mib(amount)} {resource.removesuffix('_mib')}"
    return f"{amount} {resource}"


def some_names(hosts: list[str]) -> str:
    return ", ".join(hosts[:5]) + (f", +{len(hosts) - 5} more" if len(hosts) > 5 else "")


def conflicting_rules(cluster: Cluster, feasible: Callable[[Cluster], bool]) -> list[Rule]:
    """A minimal set of hard rules that cannot hold together, by deletion: drop each rule in
    turn and keep it dropped if the rest is still infeasible. ``feasible(cluster)`` decides."""
    hard = list(cluster.hard_rules)
    others = [r for r in cluster.rules if r not in hard]
    core = list(hard)
    for rule in hard:
        trial = [r for r in core if r is not rule]
        candidate = _with_rules(cluster, [*others, *trial])
        if not feasible(candidate):
            core = trial
    return core


def _with_rules(cluster: Cluster, rules: list[Rule]) -> Cluster:
    return Cluster(
        cluster.name, cluster.hosts, cluster.vms, tuple(rules), cluster.policy, cluster.limits
    )
