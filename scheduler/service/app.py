"""The scheduler's HTTP API (FastAPI; the OpenAPI description is served at /openapi.json).

Agents POST their reports and take orders; operators read hosts and VMs, ask where a new VM
should go, and create, approve and cancel plans. Every call that changes anything needs the
right token. Bad bodies get a 4xx whose ``error`` names the field, and change nothing. The
routes live in ``routes/``, one module a resource; this module puts them together with the
body limit and the error shape they share.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agents.scheduler_client import LEADER_HEADER
from scheduler.service.routes import (
    health,
    hosts,
    orders,
    placements,
    plans,
    policy,
    reports,
    rules,
)
from scheduler.service.runtime import Runtime

MAX_BODY_BYTES = 8 * 2**20


def create_app(runtime: Runtime) -> FastAPI:
    app = FastAPI(title="vmpack scheduler", version="1")
    app.add_middleware(BodyLimit)
    app.add_middleware(WritesToTheLeader, runtime=runtime)
    app.exception_handler(RequestValidationError)(_validation_error)
    app.exception_handler(StarletteHTTPException)(_http_error)  # FastAPI's and routing's own
    for resource in (health, reports, hosts, placements, plans, orders, policy, rules):
        app.include_router(resource.router(runtime))
    return app


class WritesToTheLeader:
    """Only the leader takes writes. A standby answers one with 307 to the leader (its URL
    also in ``X-Vmpack-Leader``, which agents and the command line follow with their
    token), or 503 naming why while no scheduler leads. Reads are answered everywhere."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app, self.runtime = app, runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in READS or self.runtime.leadership.leads():
            await self.app(scope, receive, send)
            return
        view = self.runtime.leadership.view()
        if view.leader_url and view.leader_url != self.runtime.config.advertise_url:
            query = scope.get("query_string", b"").decode()
            where = view.leader_url + scope["path"] + (f"?{query}" if query else "")
            answer = JSONResponse(
                {"error": f"leader: this scheduler is a standby; {view.leader_url} leads"},
                status_code=307, headers={"Location": where, LEADER_HEADER: view.leader_url},
            )  # fmt: skip
        else:
            answer = JSONResponse(
                {"error": f"leader: no scheduler takes writes now ({view.reason}); retry"},
                status_code=503, headers={"Retry-After": "2"},
            )  # fmt: skip
        await answer(scope, receive, send)


READS = ("GET", "HEAD", "OPTIONS")


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, whatever their framing: a declared length
    is judged before anything is read; a chunked body is read up to the limit, then handed
    on whole."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            more = message.get("more_body", False)
        whole: list[Message] = [{"type": "http.request", "body": b"".join(chunks)}]

        async def replay() -> Message:
            return whole.pop() if whole else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = JSONResponse({"error": f"body: larger than {self.limit} bytes"}, status_code=413)
        await answer(scope, receive, send)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0]
    # A body of several shapes puts the one it took into the path, in parentheses: left out.
    path = [str(p) for p in first["loc"] if p != "body" and not str(p).startswith("(")]
    where = ".".join(path) or "body"
    if first["type"] == "json_invalid":
        where = "body"
    reason = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown field"
    return JSONResponse({"error": f"{where}: {reason}"}, status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = str(exc.detail)
    if exc.status_code == 400 and ":" not in detail:  # the framework's own, about the body
        detail = f"body: {detail[:1].lower()}{detail[1:]}"
    return JSONResponse({"error": detail}, status_code=exc.status_code, headers=exc.headers)
