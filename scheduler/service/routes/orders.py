"""What agents do: take their host's open orders, and say how each went."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from scheduler.service.api_models import OrderUpdateIn
from scheduler.service.auth import Principal, Role, requires
from scheduler.service.routes.common import ERRORS, existing_id
from scheduler.service.runtime import Runtime

CANCELLED_SHOWN_S = 600  # a cancelled order stays listed this long, for the agent running it


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(responses=ERRORS)
    agent = Depends(requires(runtime.config.tokens, [Role.AGENT]))
    store, metrics, clock = runtime.store, runtime.metrics, runtime.config.clock

    @routes.get("/v1/orders")
    def orders(host: str, who: Principal = agent) -> list[dict[str, Any]]:
        """Open orders of a host's agent, and those cancelled while it runs them."""
        if not who.may_act_for(host):
            raise HTTPException(403, f"host: this token takes orders for {who.host} only")
        wanted = ("pending", "running", "cancelled")
        return [
            {"id": o.id, "vm": o.vm, "target": o.target, "status": o.status, **o.details}
            for o in store.orders(host=host)
            if o.status in wanted
            and (o.status != "cancelled" or clock() - o.updated_at < CANCELLED_SHOWN_S)
        ]

    @routes.post("/v1/orders/{order_id}")
    def order_update(order_id: int, body: OrderUpdateIn, who: Principal = agent) -> dict[str, Any]:
        mine = store.order(existing_id(order_id, "order"))
        if mine is not None and not who.may_act_for(mine.agent_host):
            raise HTTPException(403, f"order: {order_id} belongs to {mine.agent_host}'s agent")
        fields = body.model_dump(exclude={"status"}, exclude_none=True)
        try:
            order = store.update_order(order_id, body.status, clock(), **fields)
        except KeyError as exc:
            raise HTTPException(404, f"order: {exc.args[0]}") from None
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from None
        if body.status == "succeeded" and body.seconds is not None:
            metrics.migration_seconds.observe(body.seconds)
        if body.downtime_ms is not None:
            metrics.migration_downtime.observe(body.downtime_ms / 1000)
        return {"id": order.id, "status": order.status}

    return routes
