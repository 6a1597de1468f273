"""A plan's life: proposed, then approved, running and finished one way or another. The one
list of plan statuses that the store, the API, the metrics and the command line share."""

from __future__ import annotations

import enum


class PlanStatus(enum.StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """Its moves ran, wholly or in part, and no more will."""
        return self in FINISHED


FINISHED = frozenset({PlanStatus.DONE, PlanStatus.FAILED, PlanStatus.CANCELLED})

# Where a plan may go from each status; anything else is refused by the store.
NEXT: dict[PlanStatus, frozenset[PlanStatus]] = {
    PlanStatus.PROPOSED: frozenset({PlanStatus.APPROVED, PlanStatus.RUNNING, PlanStatus.CANCELLED}),
    PlanStatus.APPROVED: frozenset({PlanStatus.RUNNING, PlanStatus.CANCELLED}),
    PlanStatus.RUNNING: FINISHED,
    PlanStatus.DONE: frozenset(),
    PlanStatus.FAILED: frozenset(),
    PlanStatus.CANCELLED: frozenset(),
}


class PlanConflict(Exception):
    """A plan was not where a change expected it: another caller moved it first."""

    def __init__(self, plan_id: int, status: str, wanted: str) -> None:
        super().__init__(f"status: cannot make plan {plan_id} {wanted}: it is {status}")
        self.plan_id, self.status, self.wanted = plan_id, PlanStatus(status), wanted
