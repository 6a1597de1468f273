"""Objectives per goal, as lexicographic tiers.

Each goal's tiers, most important first, are ``placement.evaluate.GOAL_TIERS``, the table
``score`` follows too. Every goal starts with the VMs left unplaced or stuck on a host they
must leave. A tier is a sum of integer terms with a known upper bound; weights are derived
so that one unit of a tier outweighs every lower tier together, which makes a single CP-SAT
objective exactly lexicographic. The tiers:

- ``hosts``: active hosts; ``new_hosts``: active hosts that run no VM now;
- ``soft``: the soft rules' weighted penalty;
- ``moves``: migrations; ``memory_gib``: memory they move, each VM rounded up to a GiB;
- ``spread_pct``: highest minus lowest utilisation (percent), summed over resources.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ortools.sat.python import cp_model

from scheduler.model import Goal, HostState
from scheduler.placement.evaluate import GOAL_TIERS, memory_gib
from scheduler.solver.cpsat.encoding import Encoding

MAX_EXACT = 2**53  # CP-SAT objectives beyond this lose integer precision


@dataclass
class Tier:
    name: str
    terms: Sequence[tuple[int, Any]]  # (coefficient, CP-SAT expression or constant)
    upper: int  # the largest value the tier can take


@dataclass
class Objective:
    tiers: list[Tier]
    weights: list[int]


def add_objective(enc: Encoding, goal: Goal) -> Objective:
    tiers = _tiers(enc, goal)
    tiers = [t for t in tiers if t.terms]
    weights = _lexicographic_weights([t.upper for t in tiers])
    enc.model.minimize(
        cp_model.LinearExpr.weighted_sum(
            [e for t in tiers for _, e in t.terms],
            [w * c for t, w in zip(tiers, weights, strict=True) for c, _ in t.terms],
        )
    )
    return Objective(tiers, weights)


def _lexicographic_weights(uppers: list[int]) -> list[int]:
    weights = [1] * len(uppers)
    for i in range(len(uppers) - 2, -1, -1):
        weights[i] = weights[i + 1] * (uppers[i + 1] + 1)
    if weights and weights[0] * (uppers[0] + 1) > MAX_EXACT:
        raise OverflowError("objective tiers too large for an exact lexicographic weighting")
    return weights


def _tiers(enc: Encoding, goal: Goal) -> list[Tier]:
    must = [(1, v) for v in (*enc.unplaced.values(), *enc.stuck.values())]
    build: dict[str, Callable[[], Tier]] = {
        "unplaced": lambda: Tier("unplaced", must, len(must)),
        "hosts": lambda: _active_tier(enc, only_new=False),
        "new_hosts": lambda: _active_tier(enc, only_new=True),
        "soft": lambda: _soft_tier(enc),
        "moves": lambda: _moves_tier(enc),
        "memory_gib": lambda: _memory_tier(enc),
        "spread_pct": lambda: _spread_tier(enc),
    }
    return [build[name]() for name in GOAL_TIERS[goal]]


def _soft_tier(enc: Encoding) -> Tier:
    terms = [(p.weight, p.amount) for p in enc.penalties]
    upper = sum(p.weight * len(enc.cluster.vms) for p in enc.penalties)
    return Tier("soft", terms, upper)


def _active_tier(enc: Encoding, only_new: bool) -> Tier:
    variables = [a for a in enc.active.values() if isinstance(a, cp_model.IntVar)]
    if only_new:
        running = set(enc.cluster.current_placement.values())
        variables = [
            a for h, a in enc.active.items() if isinstance(a, cp_model.IntVar) and h not in running
        ]
    name = "new_hosts" if only_new else "hosts"
    return Tier(name, [(1, v) for v in variables], len(variables))


def moved_indicators(enc: Encoding) -> list[tuple[str, Any]]:
    """(vm, 1 if the VM ends away from its current host) for free VMs that are running now."""
    original = enc.cluster.current_placement
    hosts = enc.cluster.host_by_name
    out = []
    for vm in enc.scope.free:
        source = original.get(vm)
        if source is None or hosts[source].state is HostState.DOWN:
            continue  # pending or restarted after a failure: a placement, not a migration
        stay = enc.x.get((vm, source))
        out.append((vm, 1 - stay if stay is not None else 1))
    return out


def _moves_tier(enc: Encoding) -> Tier:
    moved = moved_indicators(enc)
    return Tier("moves", [(1, m) for _, m in moved], len(moved))


def _memory_tier(enc: Encoding) -> Tier:
    terms = [(memory_gib(enc.cluster, vm), m) for vm, m in moved_indicators(enc)]
    return Tier("memory_gib", terms, sum(c for c, _ in terms))


def _spread_tier(enc: Encoding) -> Tier:
    """Per resource: highest minus lowest utilisation (percent) over the scope's active hosts."""
    terms: list[tuple[int, Any]] = []
    fixed_loads = _fixed_loads(enc)
    for resource in enc.cluster.resources:
        high = enc.model.new_int_var(0, 100, f"util_max[{resource}]")
        low = enc.model.new_int_var(0, 100, f"util_min[{resource}]")
        used = False
        for host_name, pairs in enc.x_by_host.items():
            capacity = enc.cluster.host_by_name[host_name].capacity.get(resource, 0)
            if capacity <= 0:
                continue
            load = cp_model.LinearExpr.weighted_sum(
                [x for _, x in pairs],
                [enc.cluster.vm_by_name[vm].demand.get(resource, 0) for vm, _ in pairs],
            ) + fixed_loads[host_name].get(resource, 0)
            enc.model.add(100 * load <= high * capacity)
            enc.model.add(100 * load >= low * capacity)
            used = True
        if used:
            terms += [(1, high), (-1, low)]
    return Tier("spread_pct", terms, 100 * len(terms) // 2)


def _fixed_loads(enc: Encoding) -> dict[str, dict[str, int]]:
    loads: dict[str, dict[str, int]] = {h: {} for h in enc.x_by_host}
    for host, vms in enc.fixed_on.items():
        if host in loads:
            for vm in vms:
                for r, d in enc.cluster.vm_by_name[vm].demand.items():
                    loads[host][r] = loads[host].get(r, 0) + d
    return loads
