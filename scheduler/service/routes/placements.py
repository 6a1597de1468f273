"""Where should a new VM go? The answer holds the room (a *claim*) until the VM's host reports
it running, or until the claim expires: a second request in between cannot be given the same
room, and host power does not switch the chosen host off while it is still empty. The
decision itself is ``service.placer``'s."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool

from scheduler.model import DISK, MEMORY, VCPUS
from scheduler.service.api_models import BatchIn, NewVMIn, PlacementRequestIn
from scheduler.service.auth import Principal, Role, requires
from scheduler.service.placer import NewVM, PlacementRefused, Placer
from scheduler.service.records import Claim
from scheduler.service.routes.common import ERRORS
from scheduler.service.routes.rules import not_stated, policy_with, rule_id, stated
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    operator = Depends(requires(runtime.config.tokens, [Role.OPERATOR]))
    routes = APIRouter(dependencies=[operator], responses=ERRORS)
    placer, clock = runtime.placer, runtime.config.clock

    @routes.post("/v1/placements")
    async def place(body: PlacementRequestIn, who: Principal = operator) -> dict[str, Any]:
        """One VM (answered with its host) or a batch (``vms``, answered with each host),
        placed all or none; ``rules`` bind the decision and stay in the policy after."""
        asked = body.vms if isinstance(body, BatchIn) else [body]
        vms = [new_vm(vm) for vm in asked]
        rules = [r.model_dump(mode="json", exclude_defaults=True) for r in body.rules]
        fresh = not_stated(runtime, rules)
        live = policy_with(runtime, [*stated(runtime), *fresh]) if rules else None
        try:
            if live is None and len(vms) == 1 and not placer.needs_solver:
                claims = await _fast(placer, vms)
            else:  # seconds of CP-SAT, maybe: not on the event loop
                claims = await run_in_threadpool(placer.place_all, vms, live)
        except PlacementRefused as refused:
            raise HTTPException(refused.status, refused.reason) from None
        if fresh:
            _keep_rules(runtime, placer, fresh, claims, who)
        placed = [{"vm": c.vm, "host": c.host, "held_until": c.expires_at} for c in claims]
        kept = [rule_id(r) for r in rules]
        if isinstance(body, BatchIn):
            return {"vms": sorted(placed, key=lambda p: str(p["vm"])), "rules": kept}
        return placed[0] | ({"rules": kept} if kept else {})

    @routes.get("/v1/placements")
    def claims() -> list[dict[str, Any]]:
        """The room held for placed VMs whose hosts have not reported them yet."""
        return [asdict(c) for c in runtime.store.claims(clock())]

    @routes.delete("/v1/placements/{name}")
    def release(name: str) -> dict[str, str]:
        """The VM will not be created after all: its room is free again."""
        if not placer.release(name):
            raise HTTPException(404, f"name: no room is held for '{name}'")
        return {"vm": name, "released": "yes"}

    return routes


def new_vm(asked: NewVMIn) -> NewVM:
    demand = {VCPUS: asked.vcpus, MEMORY: asked.memory, DISK: asked.disk, **asked.resources}
    return NewVM(asked.name, demand, dict(asked.labels), asked.priority, dict(asked.host_labels))


async def _fast(placer: Placer, vms: list[NewVM]) -> list[Claim]:
    """A millisecond in memory, then wait for the disk without a thread."""
    claims, durable = placer.choose(vms)
    failed = None
    try:
        await asyncio.wrap_future(durable)
    except Exception as exc:
        failed = exc
    placer.kept(claims, failed)
    return claims


def _keep_rules(
    runtime: Runtime, placer: Placer, fresh: list[dict[str, Any]], claims: list[Claim],
    who: Principal,
) -> None:  # fmt: skip
    """The request's new rules join the policy, so that later plans keep them; if they no
    longer fit the policy (changed meanwhile), the placement is undone."""
    try:
        live = policy_with(runtime, [*stated(runtime), *not_stated(runtime, fresh)])
    except HTTPException:
        for claim in claims:
            placer.release(claim.vm)
        raise
    runtime.set_policy(live, who.fingerprint or who.role.value)
