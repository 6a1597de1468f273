"""``POST /v1/reports``: an agent's report of its host, and the answer of which stale copies
of restarted VMs it should remove."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from agents.report import HostReport
from scheduler.model import HostState
from scheduler.service.api_models import ReportIn
from scheduler.service.auth import Principal, Role, requires
from scheduler.service.live_inventory import HostIdentityConflict
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(responses=ERRORS)
    agent = Depends(requires(runtime.config.tokens, [Role.AGENT]))
    metrics = runtime.metrics

    @routes.post("/v1/reports")
    async def report(body: ReportIn, who: Principal = agent) -> dict[str, Any]:
        if not who.may_act_for(body.host):
            metrics.reports.labels("rejected").inc()
            raise HTTPException(403, f"host: this token reports for {who.host} only")
        report = HostReport.from_json(body.model_dump())
        try:
            durable = runtime.accept_report(report)
        except HostIdentityConflict as conflict:
            metrics.reports.labels("identity_conflict").inc()
            raise HTTPException(409, str(conflict)) from None
        await asyncio.wrap_future(durable)  # on disk, with others
        metrics.reports.labels("accepted").inc()
        return {"accepted": True, "discard": stale_copies(runtime, report),
                "epoch": runtime.leadership.epoch}  # fmt: skip

    return routes


def stale_copies(runtime: Runtime, report: HostReport) -> list[str]:
    """Copies this host holds of VMs restarted elsewhere while it was down, once the
    restarted copy is seen running on another host that is not down."""
    store = runtime.store
    held = {d.name for d in report.domains}
    superseded = store.superseded(report.host) & held if held else set()
    if not superseded:
        return []
    chosen, now = runtime.live.states(), runtime.config.clock()
    running_elsewhere = {
        d.name
        for other, at in runtime.live.reports()
        if other.host != report.host
        and runtime.liveness(chosen.get(other.host, HostState.UP), at, now) is HostState.UP
        for d in other.domains
        if d.state == "running"
    }
    return sorted(superseded & running_elsewhere)
