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
from scheduler.service.api_models import PlacementIn
from scheduler.service.auth import Role, requires
from scheduler.service.placer import NewVM, PlacementRefused
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(
        dependencies=[Depends(requires(runtime.config.tokens, [Role.OPERATOR]))], responses=ERRORS
    )
    placer, clock = runtime.placer, runtime.config.clock

    @routes.post("/v1/placements")
    async def place(body: PlacementIn) -> dict[str, Any]:
        vm = NewVM(body.name, {VCPUS: body.vcpus, MEMORY: body.memory, DISK: body.disk})
        try:
            if placer.needs_solver:  # seconds of CP-SAT: not on the event loop
                claim = await run_in_threadpool(placer.place, vm)
            else:  # a millisecond in memory, then wait for the disk without a thread
                claim, durable = placer.choose(vm)
                failed = None
                try:
                    await asyncio.wrap_future(durable)
                except Exception as exc:
                    failed = exc
                placer.kept(claim, failed)
        except PlacementRefused as refused:
            raise HTTPException(refused.status, refused.reason) from None
        return {"vm": claim.vm, "host": claim.host, "held_until": claim.expires_at}

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
