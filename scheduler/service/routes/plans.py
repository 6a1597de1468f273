"""Plans: made by the engine on the current snapshot (or, for ``return``, from a host's last
evacuation), then approved, applied and cancelled by an operator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from scheduler.engine import Outcome, decide_plan, plan_to_json
from scheduler.model import Cluster, Goal
from scheduler.placement.explain import why_not_placed
from scheduler.planning.maintenance import evacuated_from, move_back
from scheduler.planning.status import PlanConflict, PlanStatus
from scheduler.service.api_models import PlanIn
from scheduler.service.auth import Role, requires
from scheduler.service.checked import PlanRefused, add_checked_plan
from scheduler.service.routes.common import ERRORS, existing_id
from scheduler.service.runtime import Runtime
from scheduler.solver.cpsat.solve import SolverSettings, SolveStatus
from scheduler.solver.options import SearchOptions

# action -> (the statuses it may start from, the status it leads to). A running plan is
# cancelled by its executor, which stops issuing orders and records the end.
TRANSITIONS = {
    "approve": ({PlanStatus.PROPOSED}, PlanStatus.APPROVED),
    "apply": ({PlanStatus.APPROVED}, PlanStatus.RUNNING),
    "cancel": ({PlanStatus.PROPOSED, PlanStatus.APPROVED}, PlanStatus.CANCELLED),
}


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(
        dependencies=[Depends(requires(runtime.config.tokens, [Role.OPERATOR]))], responses=ERRORS
    )
    store, config = runtime.store, runtime.config

    @routes.post("/v1/plans", status_code=201)
    def create_plan(body: PlanIn) -> dict[str, Any]:
        cluster = runtime.cluster()
        unknown = [h for h in body.hosts if h not in cluster.host_by_name]
        if unknown:
            raise HTTPException(422, f"hosts: unknown host '{unknown[0]}'")
        if (body.goal in ("evacuate", "return")) != bool(body.hosts):
            raise HTTPException(422, "hosts: required for the evacuate and return goals only")
        if body.goal == "return":
            return _return_plan(runtime, cluster, body.hosts)
        options = SearchOptions(SolverSettings(body.time_limit_s, config.solver_workers))
        outcome = decide_plan(cluster, Goal(body.goal), body.hosts, options)
        placement = outcome.decision.placement
        why = {vm: why_not_placed(outcome.cluster, placement, vm) for vm in outcome.left_behind}
        document = plan_to_json(outcome) | {"evacuate": body.hosts, "not_placed": why}
        summary = document["summary"]
        proven = outcome.decision.status is SolveStatus.OPTIMAL
        runtime.metrics.plan_decided(body.goal, outcome.decision.seconds, summary["gap"], proven)
        plan_id = _keep(runtime, body.goal, outcome, document)
        return {"id": plan_id, "status": "proposed", "summary": summary, "not_placed": why}

    @routes.get("/v1/plans")
    def plans() -> list[dict[str, Any]]:
        return [
            {"id": p.id, "goal": p.goal, "status": p.status, "created_at": p.created_at}
            for p in store.plans()
        ]

    @routes.get("/v1/plans/{plan_id}")
    def plan(plan_id: int) -> dict[str, Any]:
        record = store.plan(existing_id(plan_id, "plan"))
        if record is None:
            raise HTTPException(404, f"plan: no plan {plan_id}")
        events = [{"at": at, "event": e} for at, e in store.plan_events(plan_id)]
        orders = [
            {"id": o.id, "vm": o.vm, "from": o.source, "to": o.target, "status": o.status,
             "error": o.error, "seconds": o.seconds, "downtime_ms": o.downtime_ms,
             "progress_pct": o.progress_pct}
            for o in store.orders(plan_id=plan_id)
        ]  # fmt: skip
        return {"id": record.id, "goal": record.goal, "status": record.status, "events": events,
                "orders": orders,
                "plan": record.document}  # fmt: skip

    @routes.post("/v1/plans/{plan_id}/{action}")
    def transition(plan_id: int, action: str) -> dict[str, Any]:
        if action not in TRANSITIONS:
            raise HTTPException(404, f"action: unknown action '{action}' (approve, apply, cancel)")
        existing_id(plan_id, "plan")
        if action == "apply" and config.automation.level == "recommend":
            raise HTTPException(409, "automation: level recommend: plans are not carried out")
        allowed_from, target = TRANSITIONS[action]
        try:  # compare and set: of racing calls, exactly one wins; the others get 409
            store.move_plan(plan_id, allowed_from, target, config.clock(), event=target)
        except KeyError:
            raise HTTPException(404, f"plan: no plan {plan_id}") from None
        except PlanConflict as conflict:
            if action == "cancel" and conflict.status is PlanStatus.RUNNING:
                runtime.executor.cancel(plan_id)
                return {"id": plan_id, "status": "cancelling"}
            raise HTTPException(
                409, f"status: cannot {action} a plan that is {conflict.status}"
            ) from None
        if action == "apply":
            runtime.executor.start(plan_id)
        return {"id": plan_id, "status": target}

    return routes


def _return_plan(runtime: Runtime, cluster: Cluster, hosts: list[str]) -> dict[str, Any]:
    if len(hosts) != 1:
        raise HTTPException(422, "hosts: the return goal takes one host")
    host = hosts[0]
    if not cluster.host_by_name[host].accepts_vms:
        state = cluster.host_by_name[host].state.value
        raise HTTPException(409, f"hosts: {host} is {state}; it must be up to take VMs back")
    history = [(p.status, p.document) for p in runtime.store.plans()]
    outcome, why = move_back(cluster, host, evacuated_from(host, history))
    document = plan_to_json(outcome) | {"goal": "return", "returning_to": host,
                                        "not_placed": why}  # fmt: skip
    plan_id = _keep(runtime, "return", outcome, document)
    return {"id": plan_id, "status": "proposed", "summary": document["summary"],
            "not_placed": why}  # fmt: skip


def _keep(runtime: Runtime, goal: str, outcome: Outcome, document: dict[str, Any]) -> int:
    try:
        return add_checked_plan(runtime.store, goal, outcome, document, runtime.config.clock())
    except PlanRefused as refused:
        raise HTTPException(409, str(refused)) from None
