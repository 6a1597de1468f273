"""The scheduler's HTTP API (FastAPI; the OpenAPI description is served at /openapi.json).

Agents POST their reports and take orders; operators read hosts and VMs, ask where a new VM
should go, and create, approve and cancel plans. Every call that changes anything needs the
right token. Bad bodies get a 4xx whose ``error`` names the field, and change nothing. The
routes live in ``routes/``, one module a resource; this module puts them together with the
body limit and the error shape they share.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scheduler.service.routes import health, hosts, orders, placements, plans, reports
from scheduler.service.runtime import Runtime

MAX_BODY_BYTES = 8 * 2**20


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="vmpack scheduler", version="1")
    app.middleware("http")(_limit_body)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(HTTPException)(_http_error)
    for resource in (health, reports, hosts, placements, plans, orders):
        app.include_router(resource.router(runtime))
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
