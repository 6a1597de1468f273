"""The scheduler's HTTP API (FastAPI; the OpenAPI description is served at /openapi.json).

Agents POST their reports; operators read hosts and VMs, ask where a new VM should go
(``placements.py``), and create, approve and cancel plans. Every call that changes anything
needs the right token. Bad bodies get a 4xx whose ``error`` names the field, and change
nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from agents.report import HostReport
from scheduler.engine import decide_plan, plan_to_json
from scheduler.ha.reserve import check_ha
from scheduler.metrics import ClusterView, SchedulerMetrics
from scheduler.model import (
    Cluster,
    Goal,
    HostState,
    Limits,
    Policy,
    vms_by_host,
)
from scheduler.placement.explain import why_not_placed
from scheduler.planning.autopilot import AutomationPolicy
from scheduler.planning.maintenance import evacuated_from, move_back
from scheduler.service.api_models import (
    HostStateIn,
    OrderUpdateIn,
    PlanIn,
    ReportIn,
)
from scheduler.service.auth import Principal, Role, Tokens, requires
from scheduler.service.executor import ExecutionPolicy, Executor
from scheduler.service.inventory import snapshot
from scheduler.service.liveness import Heartbeat
from scheduler.service.loops.autopilot import Autopilot
from scheduler.service.loops.failover import FailoverWatch, FencingPolicy
from scheduler.service.loops.power import PowerControl, PowerPolicy
from scheduler.service.loops.reserve_cache import LastValue, running_plan_idle_s
from scheduler.service.placements import placement_routes
from scheduler.service.store import Store
from scheduler.solver.cpsat.solve import SolverSettings, SolveStatus
from scheduler.solver.options import SearchOptions

MAX_BODY_BYTES = 8 * 2**20
TRANSITIONS = {
    "approve": ({"proposed"}, "approved"),
    "apply": ({"approved"}, "running"),
    "cancel": ({"proposed", "approved", "running"}, "cancelled"),
}


@dataclass
class ServiceConfig:
    tokens: Tokens
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    solver_workers: int = 0
    clock: Callable[[], float] = time.time
    execution: ExecutionPolicy = field(default_factory=ExecutionPolicy)
    fencing: FencingPolicy = field(default_factory=FencingPolicy)
    automation: AutomationPolicy = field(default_factory=AutomationPolicy)
    failover_tick_s: float = 1.0
    power: PowerPolicy = field(default_factory=PowerPolicy)
    power_tick_s: float = 60.0
    claim_ttl_s: float = 900.0  # how long a placement holds room for a VM not yet reported


def create_app(config: ServiceConfig, store: Store) -> FastAPI:
    app = FastAPI(title="vmpack scheduler", version="1")
    agent = Depends(requires(config.tokens, [Role.AGENT]))
    operator = Depends(requires(config.tokens, [Role.OPERATOR]))

    started_at = config.clock()

    def liveness(chosen: HostState, reported_at: float, now: float) -> HostState:
        # A scheduler that was itself away has heard nothing for a while: every host gets
        # the full time from its start before it can be taken for down (and fenced).
        return config.heartbeat.state(chosen, max(reported_at, started_at), now)

    def current() -> tuple[Cluster, dict[str, float]]:
        now = config.clock()
        reports = store.reports()
        chosen = store.host_states()
        ages = {r.host: now - at for r, at in reports}
        states = {r.host: liveness(chosen.get(r.host, HostState.UP), at, now) for r, at in reports}
        inventory = snapshot(
            [r for r, _ in reports], states, config.policy, limits=config.limits,
            claims=store.claims(now),
        )  # fmt: skip
        return inventory.cluster, ages

    def down_hosts() -> set[str]:
        """Cheap: from report times alone (the failover watch asks every second)."""
        now = config.clock()
        times = store.report_times()
        chosen = store.host_states()
        return {
            h for h, at in times.items()
            if liveness(chosen.get(h, HostState.UP), at, now) is HostState.DOWN
        }  # fmt: skip

    ha_reports = LastValue(check_ha)

    def view() -> ClusterView:
        cluster, ages = current()
        counts: dict[str, int] = {}
        for plan in store.plans():
            counts[plan.status] = counts.get(plan.status, 0) + 1
        orders = store.orders()
        in_flight = sum(1 for o in orders if o.status in ("pending", "running"))
        idle = running_plan_idle_s(store, orders, config.clock())
        ha = ha_reports(cluster) if cluster.policy.ha.required else None
        unfenced = sum(1 for f in store.fencing().values() if f.status == "failed")
        return ClusterView(cluster, ages, counts, in_flight, idle, ha, unfenced)

    metrics = SchedulerMetrics(view)

    def host_details(host: str) -> dict[str, Any]:
        for report, _ in store.reports():
            if report.host == host:
                return {
                    "target_uri": report.libvirt_uri,
                    "migration_address": report.migration_address,
                }
        return {}

    executor = Executor(
        store, lambda: current()[0], config.clock, config.execution, host_details,
        on_outcome=metrics.order_finished,
    )  # fmt: skip
    app.state.executor = executor
    executor.resume()
    failover = FailoverWatch(
        store, lambda: current()[0], down_hosts, config.clock, config.fencing, executor.start,
        lambda outcome: metrics.fencing.labels(outcome).inc(),
        SearchOptions(SolverSettings(10.0, config.solver_workers)),
    )  # fmt: skip
    app.state.failover = failover
    failover.start(config.failover_tick_s)
    power = PowerControl(
        store, lambda: current()[0], config.power,
        lambda action, outcome: metrics.power.labels(action, outcome).inc(), config.clock,
    )  # fmt: skip
    failover.need_room = power.power_on
    app.state.power = power
    power.start(config.power_tick_s)
    autopilot = Autopilot(
        store, lambda: current()[0], config.clock, config.automation, executor.start,
        lambda goal, outcome: metrics.plan_decided(
            goal, outcome.decision.seconds, outcome.summary()["gap"],
            outcome.decision.status is SolveStatus.OPTIMAL,
        ),
        SearchOptions(SolverSettings(30.0, config.solver_workers)),
    )  # fmt: skip
    executor.replan = autopilot.replan
    app.state.autopilot = autopilot
    autopilot.start(config.failover_tick_s)
    app.middleware("http")(_limit_body)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(HTTPException)(_http_error)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode())

    @app.post("/v1/reports")
    def report(body: ReportIn, who: Principal = agent) -> dict[str, Any]:
        if not who.may_act_for(body.host):
            metrics.reports.labels("rejected").inc()
            raise HTTPException(403, f"host: this token reports for {who.host} only")
        report = HostReport.from_json(body.model_dump())
        store.save_report(report, at=config.clock())
        store.drop_claims(d.name for d in report.domains if d.holds_resources)
        metrics.reports.labels("accepted").inc()
        return {"accepted": True, "discard": stale_copies(report)}

    def stale_copies(report: HostReport) -> list[str]:
        """Copies this host holds of VMs restarted elsewhere while it was down, once the
        restarted copy is seen running on another host that is not down."""
        held = {d.name for d in report.domains}
        superseded = store.superseded(report.host) & held if held else set()
        if not superseded:
            return []
        chosen, now = store.host_states(), config.clock()
        running_elsewhere = {
            d.name
            for other, at in store.reports()
            if other.host != report.host
            and liveness(chosen.get(other.host, HostState.UP), at, now) is HostState.UP
            for d in other.domains
            if d.state == "running"
        }
        return sorted(superseded & running_elsewhere)

    @app.get("/v1/hosts", dependencies=[operator])
    def hosts() -> list[dict[str, Any]]:
        cluster, ages = current()
        fencing = store.fencing()
        residents = vms_by_host(cluster.current_placement)
        return [
            {"name": h.name, "state": h.state.value, "capacity": dict(h.capacity),
             "physical": dict(h.physical), "labels": dict(h.labels),
             "vms": len(residents.get(h.name, ())), "report_age_s": round(ages[h.name], 3),
             "fencing": asdict(fencing[h.name]) if h.name in fencing else None}
            for h in cluster.hosts
        ]  # fmt: skip

    @app.post("/v1/hosts/{name}/fenced", dependencies=[operator])
    def confirm_off(name: str) -> dict[str, str]:
        """An operator vouches that a down host is off: its VMs may restart elsewhere."""
        cluster, _ = current()
        host = cluster.host_by_name.get(name)
        if host is None:
            raise HTTPException(404, f"host: unknown host '{name}'")
        if host.state is not HostState.DOWN:
            raise HTTPException(409, f"host: {name} is {host.state.value}, not down")
        failover.confirm_off(name)
        return {"name": name, "fencing": "fenced"}

    @app.put("/v1/hosts/{name}/state", dependencies=[operator])
    def set_state(name: str, body: HostStateIn) -> dict[str, str]:
        if name not in store.host_states():
            raise HTTPException(404, f"host: unknown host '{name}'")
        store.set_host_state(name, HostState(body.state))
        return {"name": name, "state": body.state}

    @app.get("/v1/vms", dependencies=[operator])
    def vms() -> list[dict[str, Any]]:
        cluster, _ = current()
        return [{"name": v.name, "host": v.host, "demand": dict(v.demand)} for v in cluster.vms]

    app.include_router(
        placement_routes(store, current, power.power_on, config.claim_ttl_s,
                         config.solver_workers, config.clock),
        dependencies=[operator],
    )  # fmt: skip

    @app.post("/v1/plans", dependencies=[operator], status_code=201)
    def create_plan(body: PlanIn) -> dict[str, Any]:
        cluster, _ = current()
        unknown = [h for h in body.hosts if h not in cluster.host_by_name]
        if unknown:
            raise HTTPException(422, f"hosts: unknown host '{unknown[0]}'")
        if (body.goal in ("evacuate", "return")) != bool(body.hosts):
            raise HTTPException(422, "hosts: required for the evacuate and return goals only")
        if body.goal == "return":
            return _return_plan(cluster, body.hosts)
        options = SearchOptions(SolverSettings(body.time_limit_s, config.solver_workers))
        outcome = decide_plan(cluster, Goal(body.goal), body.hosts, options)
        placement = outcome.decision.placement
        why = {vm: why_not_placed(outcome.cluster, placement, vm) for vm in outcome.left_behind}
        document = plan_to_json(outcome) | {"evacuate": body.hosts, "not_placed": why}
        summary = document["summary"]
        proven = outcome.decision.status is SolveStatus.OPTIMAL
        metrics.plan_decided(body.goal, outcome.decision.seconds, summary["gap"], proven)
        plan_id = store.add_plan(body.goal, document, at=config.clock())
        return {"id": plan_id, "status": "proposed", "summary": summary, "not_placed": why}

    def _return_plan(cluster: Cluster, hosts: list[str]) -> dict[str, Any]:
        if len(hosts) != 1:
            raise HTTPException(422, "hosts: the return goal takes one host")
        host = hosts[0]
        if not cluster.host_by_name[host].accepts_vms:
            state = cluster.host_by_name[host].state.value
            raise HTTPException(409, f"hosts: {host} is {state}; it must be up to take VMs back")
        history = [(p.status, p.document) for p in store.plans()]
        outcome, why = move_back(cluster, host, evacuated_from(host, history))
        document = plan_to_json(outcome) | {"goal": "return", "returning_to": host,
                                            "not_placed": why}  # fmt: skip
        plan_id = store.add_plan("return", document, at=config.clock())
        return {"id": plan_id, "status": "proposed", "summary": document["summary"],
                "not_placed": why}  # fmt: skip

    @app.get("/v1/plans", dependencies=[operator])
    def plans() -> list[dict[str, Any]]:
        return [
            {"id": p.id, "goal": p.goal, "status": p.status, "created_at": p.created_at}
            for p in store.plans()
        ]

    @app.get("/v1/plans/{plan_id}", dependencies=[operator])
    def plan(plan_id: int) -> dict[str, Any]:
        record = store.plan(plan_id)
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

    @app.post("/v1/plans/{plan_id}/{action}", dependencies=[operator])
    def transition(plan_id: int, action: str) -> dict[str, Any]:
        if action not in TRANSITIONS:
            raise HTTPException(404, f"action: unknown action '{action}' (approve, apply, cancel)")
        record = store.plan(plan_id)
        if record is None:
            raise HTTPException(404, f"plan: no plan {plan_id}")
        allowed_from, target = TRANSITIONS[action]
        if record.status not in allowed_from:
            raise HTTPException(409, f"status: cannot {action} a plan that is {record.status}")
        if record.status == "running":  # the executor stops it and records the outcome
            executor.cancel(plan_id)
            return {"id": plan_id, "status": "cancelling"}
        if action == "apply" and config.automation.level == "recommend":
            raise HTTPException(409, "automation: level recommend: plans are not carried out")
        store.set_plan_status(plan_id, target, at=config.clock(), event=target)
        if action == "apply":
            executor.start(plan_id)
        return {"id": plan_id, "status": target}

    @app.get("/v1/orders")
    def orders(host: str, who: Principal = agent) -> list[dict[str, Any]]:
        """Open orders of a host's agent, and those cancelled while it runs them."""
        if not who.may_act_for(host):
            raise HTTPException(403, f"host: this token takes orders for {who.host} only")
        wanted = ("pending", "running", "cancelled")
        return [
            {"id": o.id, "vm": o.vm, "target": o.target, "status": o.status, **o.details}
            for o in store.orders(host=host)
            if o.status in wanted
            and (o.status != "cancelled" or config.clock() - o.updated_at < 600)
        ]

    @app.post("/v1/orders/{order_id}")
    def order_update(order_id: int, body: OrderUpdateIn, who: Principal = agent) -> dict[str, Any]:
        mine = store.order(order_id)
        if mine is not None and not who.may_act_for(mine.agent_host):
            raise HTTPException(403, f"order: {order_id} belongs to {mine.agent_host}'s agent")
        fields = body.model_dump(exclude={"status"}, exclude_none=True)
        try:
            order = store.update_order(order_id, body.status, config.clock(), **fields)
        except KeyError as exc:
            raise HTTPException(404, f"order: {exc.args[0]}") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if body.status == "succeeded" and body.seconds is not None:
            metrics.migration_seconds.observe(body.seconds)
        if body.downtime_ms is not None:
            metrics.migration_downtime.observe(body.downtime_ms / 1000)
        return {"id": order.id, "status": order.status}

    return app


async def _limit_body(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
    """Refuse oversized bodies before reading them (413), whatever their framing."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return JSONResponse({"error": f"body: larger than {MAX_BODY_BYTES} bytes"}, status_code=413)
    if declared is None and request.method in ("POST", "PUT"):
        received = 0
        receive = request.receive

        async def counted() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise HTTPException(413, f"body: larger than {MAX_BODY_BYTES} bytes")
            return message

        request._receive = counted  # chunked upload: count as it arrives
    return await call_next(request)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    reason = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown field"
    return JSONResponse({"error": f"{where}: {reason}"}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        {"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
    )
