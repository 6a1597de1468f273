"""What every route shares: the one shape of an error body, the error answers the OpenAPI
document lists, and ids that cannot exist answered 404 before they reach the store."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel

MAX_ID = 2**63 - 1  # the store's integer keys are signed 64-bit


class ErrorBody(BaseModel):
    """Every 4xx answer: one line that names the field (``hosts: unknown host 'kvm-9'``)."""

    error: str


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# The error answers of a route that needs a token; 422 is the request validation's own.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("the body is not JSON text (not UTF-8, or cut short)"),
    401: _error("no token, a malformed one, or an unknown one"),
    403: _error("the token's role or host may not do this"),
    404: _error("no such resource"),
    409: _error("the resource is not in a state that allows this"),
    413: _error("the body is larger than the service accepts"),
    422: _error("a field is missing, malformed or out of range"),
}


def existing_id(value: int, what: str) -> int:
    """``value`` if a record could have it as its id; else the 404 the record would give."""
    if not 1 <= value <= MAX_ID:
        raise HTTPException(404, f"{what}: no {what} {value}")
    return value
