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
