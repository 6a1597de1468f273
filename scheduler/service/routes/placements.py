"""Where should a new VM go? The answer holds the room (a *claim*) until the VM's host reports
it running, or until the claim expires: a second request in between cannot be given the same
room, and host power does not switch the chosen host off while it is still empty."""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, HTTPException

from scheduler.ha.reserve import admit_within_reserve
from scheduler.model import DISK, MEMORY, VCPUS, VM, Goal
from scheduler.placement.explain import why_not_placed
from scheduler.service.api_models import PlacementIn
from scheduler.service.auth import Role, requires
from scheduler.service.records import Claim
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter(
        dependencies=[Depends(requires(runtime.config.tokens, [Role.OPERATOR]))], responses=ERRORS
    )
    store, clock, power_on = runtime.store, runtime.config.clock, runtime.power.power_on
    claim_ttl_s, solver_workers = runtime.config.claim_ttl_s, runtime.config.solver_workers
    one_at_a_time = threading.Lock()  # two answers must not hand out the same room

    @routes.post("/v1/placements")
    def place(body: PlacementIn) -> dict[str, Any]:
        with one_at_a_time:
            return _place(body)

    def _place(body: PlacementIn) -> dict[str, Any]:
        cluster = runtime.cluster()
        if body.name in cluster.vm_by_name:
            raise HTTPException(409, f"name: VM '{body.name}' already exists")
        new = VM(body.name, {VCPUS: body.vcpus, MEMORY: body.memory, DISK: body.disk})
        asking = cluster.replace_vms([*cluster.vms, new])
        options = SearchOptions(SolverSettings(10.0, solver_workers))
        decision = decide(asking, Goal.PLACE, (), options)
        placement, refused = admit_within_reserve(
            asking, {body.name: decision.placement.get(body.name)}
        )
        host = placement.get(body.name)
        if host is None:
            why = refused.get(body.name) or why_not_placed(asking, decision.placement, body.name)
            switched_on = power_on(f"no room to place {body.name}")
            if switched_on is not None:
                why += f"; powering {switched_on} on: retry once it reports"
            raise HTTPException(409, f"no host: {why}")
        now = clock()
        claim = Claim(body.name, host, dict(new.demand), now, now + claim_ttl_s)
        store.add_claim(claim)
        return {"vm": body.name, "host": host, "held_until": claim.expires_at}

    @routes.get("/v1/placements")
    def claims() -> list[dict[str, Any]]:
        """The room held for placed VMs whose hosts have not reported them yet."""
        return [asdict(c) for c in store.claims(clock())]

    @routes.delete("/v1/placements/{name}")
    def release(name: str) -> dict[str, str]:
        """The VM will not be created after all: its room is free again."""
        if not store.drop_claims([name]):
            raise HTTPException(404, f"name: no room is held for '{name}'")
        return {"vm": name, "released": "yes"}

    return routes
