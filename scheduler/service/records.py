"""The records the scheduler service keeps: plans, their orders, fencing outcomes and the
room held for VMs placed through the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OrderRecord:
    id: int
    plan_id: int
    vm: str
    source: str
    target: str
    status: str
    error: str
    downtime_ms: int | None
    seconds: float | None
    updated_at: float
    details: dict[str, Any]
    progress_pct: float | None = None  # of the memory copy, from the libvirt job

    @property
    def kind(self) -> str:
        return str(self.details.get("kind", "migrate"))

    @property
    def agent_host(self) -> str:
        """Whose agent carries it out: the source migrates; a restart happens on the target
        (the source is down)."""
        return self.target if self.kind == "restart" else self.source


@dataclass(frozen=True)
class Fencing:
    host: str
    status: str  # "fenced" (the command succeeded or an operator confirmed) or "failed"
    detail: str
    at: float


@dataclass(frozen=True)
class PlanRecord:
    id: int
    created_at: float
    goal: str
    status: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """Room held on ``host`` for a VM the placement API sent there, from the answer until
    its host reports it (or ``expires_at``), so that the room is not given twice and the
    host is not switched off meanwhile."""

    vm: str
    host: str
    demand: dict[str, int]
    at: float
    expires_at: float
    labels: dict[str, str] = field(default_factory=dict)  # the request's, for rule selectors


@dataclass(frozen=True)
class PolicyRecord:
    version: int
    at: float
    by: str  # who applied it: a token's fingerprint, or the --policy file at start
    document: dict[str, Any]  # the policy file's content, as JSON
