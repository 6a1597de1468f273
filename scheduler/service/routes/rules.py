"""Rules as objects: list them with their state, add one, delete one. Each change is a new
version of the cluster policy (the rules live in it, beside those of the policy file), so the
history, the checks and the enforcement are the policy's own.

A rule's id is derived from its content, so it stays the same across versions and restarts
and the same rule cannot be added twice."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from scheduler.placement.state import PlacementState
from scheduler.scenario.load import ScenarioError
from scheduler.scenario.policy import LivePolicy, policy_from_data
from scheduler.scenario.schema import RuleSpec
from scheduler.service.auth import Principal, Role, requires
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime


def rule_id(rule: dict[str, Any]) -> str:
    canonical = json.dumps(rule, sort_keys=True, separators=(",", ":"))
    return "r-" + hashlib.sha256(canonical.encode()).hexdigest()[:10]


def router(runtime: Runtime) -> APIRouter:
    operator = Depends(requires(runtime.config.tokens, [Role.OPERATOR]))
    routes = APIRouter(dependencies=[operator], responses=ERRORS)

    def stated_rules() -> list[dict[str, Any]]:
        return stated(runtime)

    def replace_rules(rules: list[dict[str, Any]], who: Principal) -> int:
        return runtime.set_policy(policy_with(runtime, rules), who.fingerprint or who.role.value)

    @routes.get("/v1/rules")
    def rules() -> list[dict[str, Any]]:
        """Every rule with its id, whether the placement now breaks it, and which of the VMs
        it names do not exist yet."""
        cluster = runtime.cluster()
        view = PlacementState(cluster, cluster.current_placement)
        by_position = {r.position: r for r in cluster.rules if r.kind != "hold"}
        listed = []
        for position, rule in enumerate(stated_rules(), start=1):
            built = by_position.get(position)
            broken = built.violations(cluster, view) if built is not None else []
            missing = [vm for vm in rule.get("vms", []) if vm not in cluster.vm_by_name]
            listed.append({"id": rule_id(rule), "rule": rule, "violations": broken,
                           "missing_vms": missing})  # fmt: skip
        return listed

    @routes.post("/v1/rules", status_code=201)
    def add_rule(body: RuleSpec, who: Principal = operator) -> dict[str, Any]:
        rule = body.model_dump(mode="json", exclude_defaults=True)
        existing = stated_rules()
        if any(rule_id(r) == rule_id(rule) for r in existing):
            raise HTTPException(409, f"rule: the same rule exists already ({rule_id(rule)})")
        version = replace_rules([*existing, rule], who)
        return {"id": rule_id(rule), "rule": rule, "policy_version": version}

    @routes.delete("/v1/rules/{rule}")
    def delete_rule(rule: str, who: Principal = operator) -> dict[str, Any]:
        existing = stated_rules()
        kept = [r for r in existing if rule_id(r) != rule]
        if len(kept) == len(existing):
            raise HTTPException(404, f"rule: no rule {rule}")
        return {"id": rule, "deleted": True, "policy_version": replace_rules(kept, who)}

    return routes


def stated(runtime: Runtime) -> list[dict[str, Any]]:
    """The rules of the policy in force, as documents."""
    return list(runtime.policy.document.get("rules", []))


def policy_with(runtime: Runtime, rules: list[dict[str, Any]]) -> LivePolicy:
    """The policy in force with ``rules`` instead of its own; 409 naming the rules by id if
    they cannot all hold (two hard rules that contradict each other)."""
    document = {**runtime.policy.document, "rules": rules}
    try:
        return policy_from_data(document, "rules")
    except ScenarioError as exc:
        raise HTTPException(409, _naming(exc.field, exc.reason, rules)) from None


def not_stated(runtime: Runtime, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Those of ``rules`` the policy does not hold yet, each once."""
    known = {rule_id(r) for r in stated(runtime)}
    fresh: dict[str, dict[str, Any]] = {}
    for rule in rules:
        if rule_id(rule) not in known:
            fresh.setdefault(rule_id(rule), rule)
    return list(fresh.values())


def _naming(field: str, reason: str, rules: list[dict[str, Any]]) -> str:
    """A refusal that names the rules by id, not by position: "rules[1]: ... affinity rule 1
    ..." -> "rule r-...: ... affinity rule r-... ..."."""

    def by_id(match: re.Match[str]) -> str:
        index = int(match.group(1)) - 1
        return f"rule {rule_id(rules[index])}" if 0 <= index < len(rules) else match.group(0)

    reason = re.sub(r"\brule (\d+)\b", by_id, reason)
    if field.startswith("rules[") and "]" in field:
        index = int(field[len("rules[") : field.index("]")])
        if 0 <= index < len(rules):
            return f"rule {rule_id(rules[index])}: {reason}"
    return f"{field}: {reason}" if field else reason
