"""``/health`` and ``/metrics``: open to anyone who can reach the port."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import generate_latest

from scheduler.service.leadership import Role
from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter()

    @routes.get("/health")
    def health() -> JSONResponse:
        """Whether this scheduler leads, which one does, and why not; 503 while the store
        is out of reach (then nobody is known to lead)."""
        view = runtime.leadership.view()
        body = {"status": "ok" if view.role is not Role.LOST else "store unreachable",
                "role": view.role.value, "epoch": view.epoch, "leader": view.leader_url,
                "reason": view.reason}  # fmt: skip
        return JSONResponse(body, status_code=503 if view.role is Role.LOST else 200)

    @routes.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(runtime.metrics.registry).decode())

    return routes
