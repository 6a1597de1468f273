"""A cluster policy for the running scheduler: the ``policy``, ``rules`` and ``limits`` of
scenario format v1, without hosts or VMs (the agents report those).

The same schema and the same one-line errors as a scenario file. A rule may name VMs that do
not exist yet: it applies to those that do, and to each one once it appears; a ``selector``
matches the VMs by their labels as they are now. What can be checked without the cluster is
checked at once: each rule's shape, and hard rules that contradict each other on VMs they
both name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic

from scheduler.model import DEFAULT_OVERCOMMIT, HaPolicy, Limits, Policy
from scheduler.rules import RULE_TYPES, Rule
from scheduler.scenario.checks import against_affinity
from scheduler.scenario.load import (
    ScenarioError,
    YamlPath,
    field_name,
    line_of,
    read_text,
    read_yaml,
    schema_error,
)
from scheduler.scenario.schema import (
    OVERCOMMIT_KEYS,
    LimitsSpec,
    PolicySpec,
    RuleSpec,
    Strict,
)

GROUP_RULES = ("affinity", "anti-affinity")  # a group of one binds nothing


class PolicyFileSpec(Strict):
    version: int = 1
    name: str = ""
    description: str = ""
    policy: PolicySpec = PolicySpec()
    rules: list[RuleSpec] = pydantic.Field(default_factory=list)
    limits: LimitsSpec = LimitsSpec()


@dataclass(frozen=True)
class LivePolicy:
    """What the running scheduler enforces, and the document it came from (kept, shown)."""

    policy: Policy
    limits: Limits
    rules: tuple[RuleSpec, ...]
    document: Mapping[str, Any]

    def rules_for(self, labels: Mapping[str, Mapping[str, str]]) -> tuple[Rule, ...]:
        """The rules over the VMs that exist (VM name -> its labels), positions from 1."""
        built: list[Rule] = []
        for position, spec in enumerate(self.rules, start=1):
            if spec.vms:
                members = tuple(vm for vm in spec.vms if vm in labels)
            else:
                members = tuple(
                    vm for vm, own in sorted(labels.items())
                    if all(own.get(k) == v for k, v in spec.selector.items())
                )  # fmt: skip
            if len(members) >= (2 if spec.type in GROUP_RULES else 1):
                built.append(RULE_TYPES[spec.type].from_fields(position, members, spec))
        return tuple(built)

    def rules_binding(
        self,
        vm: str,
        labels: Mapping[str, str],
        exists: Callable[[str], bool],
        labelled: Callable[[Mapping[str, str]], Iterable[str]],
    ) -> tuple[Rule, ...]:
        """The rules that would bind ``vm`` (with ``labels``) once it exists, over it and the
        VMs that exist, numbered as ``rules_for`` numbers them: what one placement needs,
        without building the rules over every VM."""
        built: list[Rule] = []
        for position, spec in enumerate(self.rules, start=1):
            if spec.vms:
                if vm not in spec.vms:
                    continue
                members = tuple(v for v in spec.vms if v == vm or exists(v))
            elif all(labels.get(k) == v for k, v in spec.selector.items()):
                members = tuple(sorted({*labelled(spec.selector), vm}))
            else:
                continue
            if len(members) >= (2 if spec.type in GROUP_RULES else 1):
                built.append(RULE_TYPES[spec.type].from_fields(position, members, spec))
        return tuple(built)


def load_policy(path: str | Path) -> LivePolicy:
    return parse_policy(read_text(path), str(path))


def parse_policy(text: str, source: str = "<policy>") -> LivePolicy:
    data, lines = read_yaml(text, source)
    return policy_from_data(data, source, lines)


def policy_from_data(
    data: object, source: str = "<policy>", lines: Mapping[YamlPath, int] | None = None
) -> LivePolicy:
    """Validate a policy document (from a file, or an API body) into what the service runs."""
    lines = lines or {}
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ScenarioError(source, 1, "", "a policy is a mapping with policy, rules and limits")
    for key in ("hosts", "vms", "goal"):
        if key in data:
            reason = "a policy file holds policy, rules and limits; the agents report the rest"
            raise ScenarioError(source, line_of(lines, (key,)), key, reason)
    try:
        spec = PolicyFileSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise schema_error(exc, source, lines, PolicyFileSpec) from None
    for path, reason in _problems(spec):
        raise ScenarioError(source, line_of(lines, path), field_name(path), reason)
    return _live(spec)


def _live(spec: PolicyFileSpec) -> LivePolicy:
    ratios = dict(DEFAULT_OVERCOMMIT)
    ratios.update({OVERCOMMIT_KEYS.get(k, k): v for k, v in spec.policy.overcommit.items()})
    ha = HaPolicy(spec.policy.ha.host_failures_to_tolerate, spec.policy.ha.failure_domain)
    limits = Limits(
        spec.limits.max_moves, spec.limits.max_parallel, spec.limits.max_parallel_per_host
    )
    document = spec.model_dump(mode="json", exclude_defaults=True)
    return LivePolicy(Policy(ratios, ha), limits, tuple(spec.rules), document)


def _problems(spec: PolicyFileSpec) -> Iterator[tuple[YamlPath, str]]:
    for i, rule in enumerate(spec.rules):
        path: YamlPath = ("rules", i)
        if not rule.vms and not rule.selector:
            yield path, f"{rule.type} needs 'vms' or 'selector'"
        if rule.type in ("pin", "ban") and not rule.hosts:
            yield path, f"{rule.type} needs 'hosts'"
        if rule.type in GROUP_RULES and rule.vms and len(set(rule.vms)) < 2:
            yield (*path, "vms"), f"{rule.type} needs at least two VMs"
        if rule.type == "spread" and rule.label is None:
            yield path, "spread needs 'label' (the host label naming the domain, e.g. rack)"
        if rule.type != "spread" and rule.label is not None:
            yield (*path, "label"), f"only spread takes 'label'; {rule.type} is per host"
    yield from _contradictions(spec)


def _contradictions(spec: PolicyFileSpec) -> Iterator[tuple[YamlPath, str]]:
    """Hard rules that cannot hold together on the VMs they name, whatever the cluster."""
    hard = [(i, r, set(r.vms)) for i, r in enumerate(spec.rules) if not r.soft]
    for i, rule, members in hard:
        if rule.type == "affinity":
            yield from against_affinity(i, members, hard)
    allowed: dict[str, set[str]] = {}  # VMs a hard pin names -> hosts left to them
    for kind in ("pin", "ban"):  # every pin first: a ban may come before the pin it empties
        for i, rule, members in hard:
            for vm in sorted(members) if rule.type == kind else ():
                if kind == "pin":
                    allowed[vm] = allowed.get(vm, set(rule.hosts)) & set(rule.hosts)
                elif vm in allowed:
                    allowed[vm] -= set(rule.hosts)
                else:
                    continue
                if not allowed[vm]:  # this rule took the last host away
                    yield ("rules", i), f"pin and ban rules leave no host for {vm}"
