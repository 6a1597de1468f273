"""Cross-reference checks of a scenario that has the right shape: duplicate names, rules that
name unknown VMs or hosts, VMs that fit on no host, and hard rules that contradict each other.
Each check returns the YAML path of the offending field and a reason."""

from __future__ import annotations

from collections.abc import Iterator

from scheduler.model import DEFAULT_OVERCOMMIT, DISK, MEMORY, VCPUS, allocatable
from scheduler.scenario.schema import OVERCOMMIT_KEYS, HostSpec, RuleSpec, ScenarioSpec, VMSpec

Problem = tuple[tuple[str | int, ...], str]

_SPEC_KEYS = {VCPUS: "vcpus", MEMORY: "memory", DISK: "disk"}  # model key -> the file's


def check_references(spec: ScenarioSpec) -> Problem | None:
    for problem in _all_problems(spec):
        return problem
    return None


def _all_problems(spec: ScenarioSpec) -> Iterator[Problem]:
    yield from _duplicates("hosts", [h.name for h in spec.hosts])
    yield from _duplicates("vms", [v.name for v in spec.vms])
    hosts = {h.name: h for h in spec.hosts}
    vms = {v.name: v for v in spec.vms}
    resources = {r for h in spec.hosts for r in h.resources} | {
        r for v in spec.vms for r in v.resources
    }
    yield from _overcommit_keys(("policy", "overcommit"), spec.policy.overcommit, resources)
    for i, h in enumerate(spec.hosts):
        yield from _overcommit_keys(("hosts", i, "overcommit"), h.overcommit, resources)
    yield from _ha_problems(spec)
    capacities = _distinct_capacities(spec)
    for i, v in enumerate(spec.vms):
        if v.host is not None and v.host not in hosts:
            yield ("vms", i, "host"), f"unknown host '{v.host}'"
        if not any(_fits_in(_demand(v), cap) for cap in capacities):
            yield ("vms", i), f"{v.name} is larger than every host ({_largest_gap(v, spec)})"
    for i, rule in enumerate(spec.rules):
        yield from _rule_problems(("rules", i), rule, spec, hosts, vms)
    yield from _contradictions(spec)
    goal = spec.goal
    if goal is not None and not isinstance(goal, str):
        for j, name in enumerate(goal.hosts):
            if name not in hosts:
                yield ("goal", "hosts", j), f"unknown host '{name}'"


def _ha_problems(spec: ScenarioSpec) -> Iterator[Problem]:
    ha = spec.policy.ha
    alive = [h for h in spec.hosts if h.state != "down"]
    if ha.host_failures_to_tolerate >= max(len(alive), 1):
        left = f"{ha.host_failures_to_tolerate} failures would leave none of {len(alive)} hosts"
        yield ("policy", "ha", "host_failures_to_tolerate"), left
    label = ha.failure_domain
    if label is not None and not any(label in h.labels for h in spec.hosts):
        yield ("policy", "ha", "failure_domain"), f"no host has the label '{label}'"


def _duplicates(section: str, names: list[str]) -> Iterator[Problem]:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            yield (section, i, "name"), f"duplicate name '{name}'"
        seen.add(name)


def _overcommit_keys(
    path: tuple[str | int, ...], ratios: dict[str, float], extra: set[str]
) -> Iterator[Problem]:
    for key in ratios:
        if key not in OVERCOMMIT_KEYS and key not in extra:
            known = ", ".join([*OVERCOMMIT_KEYS, *sorted(extra)])
            yield (*path, key), f"unknown resource '{key}' (known: {known})"


def _capacity(host: HostSpec, spec: ScenarioSpec) -> dict[str, float]:
    """The host's capacity as the loader computes it, keyed as ``_demand`` keys demands."""
    ratios = dict(DEFAULT_OVERCOMMIT)
    for given in (spec.policy.overcommit, host.overcommit):
        ratios.update({OVERCOMMIT_KEYS.get(k, k): v for k, v in given.items()})
    physical = {VCPUS: host.cpus, MEMORY: host.memory, DISK: host.disk, **host.resources}
    cap = allocatable(physical, ratios)
    return {_SPEC_KEYS.get(r, r): amount for r, amount in cap.items()}


def _demand(vm: VMSpec) -> dict[str, float]:
    return {"vcpus": vm.vcpus, "memory": vm.memory, "disk": vm.disk, **vm.resources}


def _distinct_capacities(spec: ScenarioSpec) -> list[dict[str, float]]:
    # Clusters have a handful of host models: check each VM against each model once.
    unique = {tuple(sorted(_capacity(h, spec).items())) for h in spec.hosts}
    return [dict(items) for items in unique]


def _fits_in(demand: dict[str, float], cap: dict[str, float]) -> bool:
    return all(amount <= cap.get(r, 0) + 1e-9 for r, amount in demand.items() if amount)


def _largest_gap(vm: VMSpec, spec: ScenarioSpec) -> str:
    best = {r: max(_capacity(h, spec).get(r, 0) for h in spec.hosts) for r in _demand(vm)}
    short = [r for r, amount in _demand(vm).items() if amount > best[r] + 1e-9]
    return "; ".join(f"{r} {_demand(vm)[r]:g} > largest host {best[r]:g}" for r in short)


def _rule_problems(
    path: tuple[str | int, ...], rule: RuleSpec, spec: ScenarioSpec,
    hosts: dict[str, HostSpec], vms: dict[str, VMSpec],
) -> Iterator[Problem]:  # fmt: skip
    for j, name in enumerate(rule.vms):
        if name not in vms:
            yield (*path, "vms", j), f"unknown VM '{name}'"
    for j, name in enumerate(rule.hosts):
        if name not in hosts:
            yield (*path, "hosts", j), f"unknown host '{name}'"
    members = _members(rule, spec)
    if not rule.vms and not rule.selector:
        yield path, f"{rule.type} needs 'vms' or 'selector'"
    elif rule.selector and not rule.vms and not members:
        yield (*path, "selector"), f"selector {rule.selector} matches no VM"
    if rule.type in ("pin", "ban") and not rule.hosts:
        yield path, f"{rule.type} needs 'hosts'"
    if rule.type in ("affinity", "anti-affinity") and len(members) < 2:
        yield (*path, "vms"), f"{rule.type} needs at least two VMs"
    if rule.type != "spread" and rule.label is not None:
        yield (*path, "label"), f"only spread takes 'label'; {rule.type} is per host"
    if rule.type == "spread":
        if rule.label is None:
            yield path, "spread needs 'label' (the host label naming the domain, e.g. rack)"
        else:
            for name, h in hosts.items():
                if rule.label not in h.labels:
                    yield (*path, "label"), f"host {name} has no label '{rule.label}'"
                    break


def _members(rule: RuleSpec, spec: ScenarioSpec) -> list[str]:
    if rule.vms:
        return list(rule.vms)
    return [
        v.name for v in spec.vms if all(v.labels.get(k) == val for k, val in rule.selector.items())
    ]


def _contradictions(spec: ScenarioSpec) -> Iterator[Problem]:
    hard = [(i, r, set(_members(r, spec))) for i, r in enumerate(spec.rules) if not r.soft]
    vms = {v.name: v for v in spec.vms}
    everywhere = frozenset(h.name for h in spec.hosts)
    allowed: dict[str, frozenset[str]] = {}  # only VMs under a pin or a ban: no VMs x hosts
    for i, rule, members in hard:
        if rule.type not in ("pin", "ban"):
            continue
        for name in sorted(members & vms.keys()):
            hosts = allowed.get(name, everywhere)
            narrowed = hosts & set(rule.hosts) if rule.type == "pin" else hosts - set(rule.hosts)
            allowed[name] = narrowed
            if hosts and not narrowed:  # this rule took the last host away
                yield ("rules", i), f"pin and ban rules leave no host for {name}"
    for i, rule, members in hard:
        if rule.type != "affinity":
            continue
        hosts_of = {n: allowed.get(n, everywhere) for n in members & vms.keys()}
        yield from _affinity_conflicts(i, rule, members, hard, hosts_of, vms, spec)


def against_affinity(
    i: int, members: set[str], hard: list[tuple[int, RuleSpec, set[str]]]
) -> Iterator[Problem]:
    """Hard rules that contradict affinity rule ``i`` (over ``members``) on VMs both name:
    an anti-affinity between two of them, or a spread that allows fewer per domain."""
    for j, other, other_members in hard:
        both = sorted(members & other_members)
        if other.type == "anti-affinity" and len(both) >= 2:
            reason = f"anti-affinity contradicts affinity rule {i + 1} on {both[0]} and {both[1]}"
            yield ("rules", j), reason
        if other.type == "spread" and len(both) > (other.max_per_domain or 1):
            yield (
                ("rules", j),
                (
                    f"spread allows {other.max_per_domain or 1} per {other.label}, but affinity "
                    f"rule {i + 1} keeps {len(both)} of its VMs on one host"
                ),
            )


def _affinity_conflicts(
    i: int, rule: RuleSpec, members: set[str], hard: list[tuple[int, RuleSpec, set[str]]],
    allowed: dict[str, frozenset[str]], vms: dict[str, VMSpec], spec: ScenarioSpec,
) -> Iterator[Problem]:  # fmt: skip
    yield from against_affinity(i, members, hard)
    common = (
        frozenset.intersection(*(allowed.get(n, frozenset()) for n in members))
        if members
        else frozenset()
    )
    if members and not common:
        yield ("rules", i), "pin/ban rules give the VMs of this affinity group no common host"
    group: dict[str, float] = {}
    for name in members & vms.keys():
        for r, amount in _demand(vms[name]).items():
            group[r] = group.get(r, 0) + amount
    if members and not any(_fits_in(group, cap) for cap in _distinct_capacities(spec)):
        yield ("rules", i), "the VMs of this affinity group together fit on no host"
