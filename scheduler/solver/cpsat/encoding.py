"""Variables and hard constraints of the placement model.

The same encoding serves the whole cluster and the neighbourhoods of the large-neighbourhood
search: a ``Scope`` says which VMs may be placed (``free``), on which hosts, and where every
other VM stays. Built in the order of the OR-Tools samples: variables, then constraints; the
objective is added by ``objective.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise

from ortools.sat.python import cp_model

from scheduler.model import Cluster, Host, HostState, add_into
from scheduler.rules import Penalty, Rule

# What the rules add up: a 0/1 variable, a sum of them, or a constant for a VM held in place.
Expr = cp_model.LinearExpr | cp_model.IntVar | int


@dataclass
class Scope:
    free: list[str]
    hosts: list[str]
    candidates: Mapping[str, list[str]]  # free VM -> hosts of the scope it may take
    incumbent: Mapping[str, str | None]  # where every VM is in the current solution
    may_be_unplaced: frozenset[str] = frozenset()  # pending VMs: unplaced is allowed, at a cost
    fallback_host: Mapping[str, str] = field(default_factory=dict)  # stuck-on-source option

    def is_free(self, vm: str) -> bool:
        return vm in self._free_set

    def __post_init__(self) -> None:
        self._free_set = frozenset(self.free)


class Encoding:
    """The CP-SAT model of one scope, with helpers the rules use to post their constraints."""

    def __init__(self, cluster: Cluster, scope: Scope) -> None:
        self.cluster, self.scope = cluster, scope
        self.model = cp_model.CpModel()
        self.x: dict[tuple[str, str], cp_model.IntVar] = {}
        self.x_by_host: dict[str, list[tuple[str, cp_model.IntVar]]] = {h: [] for h in scope.hosts}
        self.unplaced: dict[str, cp_model.IntVar] = {}
        self.stuck: dict[str, cp_model.IntVar] = {}
        self.active: dict[str, cp_model.IntVar | int] = {}
        self.penalties: list[Penalty] = []
        self.fixed_on: dict[str, set[str]] = {}
        self.symmetric: list[tuple[list[str], list[str]]] = []  # (host order, VM order)
        for vm, host in scope.incumbent.items():
            if host is not None and not scope.is_free(vm):
                self.fixed_on.setdefault(host, set()).add(vm)
        self._add_assignment()
        self._add_capacity()
        self._add_rules(cluster.rules)
        self._add_move_budget()
        self._break_symmetry()

    # -- helpers for rules -------------------------------------------------------------------

    def placed_on(self, vm: str, host: str) -> Expr:
        if self.scope.is_free(vm):
            return self.x.get((vm, host), 0)
        return 1 if self.scope.incumbent.get(vm) == host else 0

    def count_on(self, vms: Collection[str], host: str) -> Expr:
        members = vms if isinstance(vms, set | frozenset) else set(vms)
        free_here = [var for vm, var in self.x_by_host.get(host, ()) if vm in members]
        fixed_here = len(self.fixed_on.get(host, set()) & members)
        return cp_model.LinearExpr.sum(free_here) + fixed_here if free_here else fixed_here

    def hosts_touching(self, vms: Iterable[str]) -> list[str]:
        """Hosts of the scope where at least one of ``vms`` has a decision to make."""
        wanted = set(vms)
        return [h for h in self.scope.hosts if any(vm in wanted for vm, _ in self.x_by_host[h])]

    # -- constraints -------------------------------------------------------------------------

    def _add_assignment(self) -> None:
        for vm in self.scope.free:
            options = []
            for host in self.scope.candidates[vm]:
                var = self.model.new_bool_var(f"x[{vm},{host}]")
                self.x[vm, host] = var
                self.x_by_host[host].append((vm, var))
                options.append(var)
            fallback = self.scope.fallback_host.get(vm)
            if fallback is not None and (vm, fallback) not in self.x:
                var = self.model.new_bool_var(f"stuck[{vm},{fallback}]")
                self.x[vm, fallback] = var
                self.x_by_host.setdefault(fallback, []).append((vm, var))
                self.stuck[vm] = var
                options.append(var)
            if vm in self.scope.may_be_unplaced:
                self.unplaced[vm] = self.model.new_bool_var(f"unplaced[{vm}]")
                options.append(self.unplaced[vm])
            self.model.add_exactly_one(options)

    def _add_capacity(self) -> None:
        vms = self.cluster.vm_by_name
        for host_name, pairs in self.x_by_host.items():
            host = self.cluster.host_by_name[host_name]
            load: dict[str, int] = {}  # of the VMs that stay on it, whatever the model decides
            for vm in self.fixed_on.get(host_name, ()):
                add_into(load, vms[vm].demand)
            if load or not pairs:
                self.active[host_name] = 1 if load else 0
                active: Expr = 1
            else:
                var = self.model.new_bool_var(f"active[{host_name}]")
                self.active[host_name] = active = var
                for _, x in pairs:  # x <= active tightens the relaxation
                    self.model.add_implication(x, var)
            for resource in self.cluster.resources:
                terms = [(vms[vm].demand.get(resource, 0), x) for vm, x in pairs]
                terms = [(d, x) for d, x in terms if d]
                if not terms:
                    continue
                room = host.capacity.get(resource, 0) - load.get(resource, 0)
                if sum(d for d, _ in terms) <= room and not isinstance(active, cp_model.IntVar):
                    continue  # cannot overflow: skip the constraint
                self.model.add(sum(d * x for d, x in terms) <= room * active)

    def _add_rules(self, rules: Iterable[Rule]) -> None:
        for rule in rules:
            if any(self.scope.is_free(vm) for vm in rule.vms):
                self.penalties.extend(rule.encode(self))

    def _add_move_budget(self) -> None:
        """``limits.max_moves``: migrations inside the scope plus those already made outside."""
        budget = self.cluster.limits.max_moves
        if budget is None:
            return
        original = self.cluster.current_placement
        hosts = self.cluster.host_by_name
        outside = sum(
            1
            for vm, host in self.scope.incumbent.items()
            if not self.scope.is_free(vm) and host != original[vm] and _running(hosts, original[vm])
        )
        stays = [
            self.x.get((vm, source), 0)
            for vm in self.scope.free
            if (source := original[vm]) is not None and _running(hosts, source)
        ]
        self.model.add(len(stays) - cp_model.LinearExpr.sum(stays) <= max(0, budget - outside))

    def _break_symmetry(self) -> None:
        """Among interchangeable empty hosts, fix an order so the solver does not explore the
        k! relabellings of each solution.

        Hosts are interchangeable when they have the same capacity, labels and state, no VM now
        or held in place, and no rule names them. Relabelling such hosts by the first VM (in a
        fixed order) each receives shows two orders are safe: the used ones come first, and
        the j-th VM lands on one of the first j + 1 of them.
        """
        largest: dict[str, int] = {}
        for spec in self.cluster.hosts:
            for r, amount in spec.capacity.items():
                largest[r] = max(largest.get(r, 0), amount)

        def size(vm: str) -> tuple[float, str]:
            demand = self.cluster.vm_by_name[vm].demand
            return max((d / (largest.get(r) or 1) for r, d in demand.items()), default=0.0), vm

        for members in self._interchangeable_hosts():
            inside = set(members)
            for earlier, later in pairwise(members):
                self.model.add(self.active[earlier] >= self.active[later])
            wanted = [
                vm for vm in self.scope.free if inside.intersection(self.scope.candidates[vm])
            ]
            wanted.sort(key=size, reverse=True)
            self.symmetric.append((members, wanted))
            for j, vm in enumerate(wanted):
                for host in members[j + 1 :]:
                    var = self.x.get((vm, host))
                    if var is not None:
                        self.model.add(var == 0)

    def _in_symmetric_order(self, placement: Mapping[str, str | None]) -> dict[str, str | None]:
        """The same placement with interchangeable hosts relabelled to respect their order."""
        relabelled = dict(placement)
        for members, wanted in self.symmetric:
            inside = set(members)
            used: list[str] = []
            for vm in wanted:
                host = placement.get(vm)
                if host in inside and host not in used:
                    used.append(host)
            rename = dict(zip(used, members, strict=False))
            for vm in wanted:
                host = placement.get(vm)
                if host in rename:
                    relabelled[vm] = rename[host]
        return relabelled

    def _interchangeable_hosts(self) -> list[list[str]]:
        named = {h for r in self.cluster.rules for h in r.named_hosts}
        running = set(self.cluster.current_placement.values())
        fallback = set(self.scope.fallback_host.values())
        classes: dict[tuple[object, ...], list[str]] = {}
        for name in self.scope.hosts:
            active = self.active.get(name)
            if not isinstance(active, cp_model.IntVar) or name in named | running | fallback:
                continue
            host = self.cluster.host_by_name[name]
            key = (
                tuple(sorted(host.capacity.items())),
                tuple(sorted(host.labels.items())),
                host.state,
            )
            classes.setdefault(key, []).append(name)
        return [sorted(members) for members in classes.values() if len(members) > 1]

    # -- reading the solution ----------------------------------------------------------------

    def placement_from(self, value: object) -> dict[str, str | None]:
        """The full placement after a solve; ``value`` is the solver's BooleanValue."""
        placement = dict(self.scope.incumbent)
        for (vm, host), var in self.x.items():
            if value(var):  # type: ignore[operator]
                placement[vm] = host
        for vm, var in self.unplaced.items():
            if value(var):  # type: ignore[operator]
                placement[vm] = None
        return placement

    def add_hint(self, placement: Mapping[str, str | None]) -> None:
        placement = self._in_symmetric_order(placement)
        for (vm, host), var in self.x.items():
            self.model.add_hint(var, placement.get(vm) == host)
        for vm, var in self.unplaced.items():
            self.model.add_hint(var, placement.get(vm) is None)
        for host, active in self.active.items():
            if isinstance(active, cp_model.IntVar):
                self.model.add_hint(
                    active, any(placement.get(vm) == host for vm, _ in self.x_by_host[host])
                )


def _running(hosts: Mapping[str, Host], source: str | None) -> bool:
    """A VM whose leaving would be a live migration (not a placement or a restart)."""
    return source is not None and hosts[source].state is not HostState.DOWN
