"""``/health`` and ``/metrics``: open to anyone who can reach the port."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import generate_latest

from scheduler.service.runtime import Runtime


def router(runtime: Runtime) -> APIRouter:
    routes = APIRouter()

    @routes.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @routes.get("/metrics", response_class=PlainTextResponse)
    def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(runtime.metrics.registry).decode())

    return routes
