"""The cluster policy in force: read it, or replace it with a new version. A new one is
validated whole first (the same checks as a policy file; 422 naming the field), then kept
with when and by which token, and every decision from then on follows it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException

from scheduler.scenario.load import ScenarioError
from scheduler.scenario.policy import policy_from_data
from scheduler.service.auth import Principal, Role, requires
from scheduler.service.routes.common import ERRORS
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    operator = Depends(requires(runtime.config.tokens, [Role.OPERATOR]))
    routes = APIRouter(dependencies=[operator], responses=ERRORS)

    @routes.get("/v1/policy")
    def policy() -> dict[str, Any]:
        record = runtime.store.policy()
        if record is None:
            return {"version": 0, "at": None, "by": "defaults", "policy": {}}
        return {"version": record.version, "at": record.at, "by": record.by,
                "policy": record.document}  # fmt: skip

    @routes.put("/v1/policy")
    def replace_policy(
        body: dict[str, Any] = Body(..., description="a policy file's content, as JSON"),  # noqa: B008
        who: Principal = operator,
    ) -> dict[str, Any]:
        try:
            live = policy_from_data(body, "body")
        except ScenarioError as exc:  # "body: rules[1]: ..." -> the field and the reason
            where = f"{exc.field}: " if exc.field else ""
            raise HTTPException(422, f"{where}{exc.reason}") from None
        version = runtime.set_policy(live, who.fingerprint or who.role.value)
        return {"version": version, "policy": live.document}

    return routes
