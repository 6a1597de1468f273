"""Hosts and VMs as the scheduler sees them, a host's state set by an operator, and an
operator's word that a down host is off."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from scheduler.model import HostState, vms_by_host
from scheduler.service.api_models import HostStateIn
from scheduler.service.auth import Role, requires
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(
        dependencies=[Depends(requires(runtime.config.tokens, [Role.OPERATOR]))], responses=ERRORS
    )
    store = runtime.store

    def identity(host: str) -> str:
        report = runtime.live.report_of(host)
        return report.host_uuid if report is not None else ""

    @routes.get("/v1/hosts")
    def hosts() -> list[dict[str, Any]]:
        cluster, ages = runtime.current()
        fencing = store.fencing()
        residents = vms_by_host(cluster.current_placement)
        return [
            {"name": h.name, "state": h.state.value, "capacity": dict(h.capacity),
             "physical": dict(h.physical), "labels": dict(h.labels),
             "host_uuid": identity(h.name),
             "vms": len(residents.get(h.name, ())), "report_age_s": round(ages[h.name], 3),
             "fencing": asdict(fencing[h.name]) if h.name in fencing else None}
            for h in cluster.hosts
        ]  # fmt: skip

    @routes.post("/v1/hosts/{name}/fenced")
    def confirm_off(name: str) -> dict[str, str]:
        """An operator vouches that a down host is off: its VMs may restart elsewhere."""
        host = runtime.cluster().host_by_name.get(name)
        if host is None:
            raise HTTPException(404, f"host: unknown host '{name}'")
        if host.state is not HostState.DOWN:
            raise HTTPException(409, f"host: {name} is {host.state.value}, not down")
        runtime.failover.confirm_off(name)
        return {"name": name, "fencing": "fenced"}

    @routes.delete("/v1/hosts/{name}/identity")
    def forget_identity(name: str) -> dict[str, str]:
        """The machine under this name was replaced: the next report sets its identity."""
        if not runtime.forget_identity(name):
            raise HTTPException(404, f"host: unknown host '{name}'")
        return {"name": name, "host_uuid": ""}

    @routes.put("/v1/hosts/{name}/state")
    def set_state(name: str, body: HostStateIn) -> dict[str, str]:
        if name not in runtime.live.index:
            raise HTTPException(404, f"host: unknown host '{name}'")
        runtime.set_host_state(name, HostState(body.state))
        return {"name": name, "state": body.state}

    @routes.get("/v1/vms")
    def vms() -> list[dict[str, Any]]:
        inventory, _ = runtime.inventory()
        fixed = {d.name for r, _ in runtime.live.reports() for d in r.domains if not d.migratable}
        return [
            {"name": v.name, "host": v.host, "demand": dict(v.demand), "usage": dict(v.usage),
             "labels": dict(v.labels), "priority": v.priority,
             "migratable": v.name not in fixed, "conflict": inventory.conflicts.get(v.name)}
            for v in inventory.cluster.vms
        ]  # fmt: skip

    return routes
