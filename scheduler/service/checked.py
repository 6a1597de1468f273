"""Nothing unchecked runs: every plan the service keeps is first replayed by the solver-free
checker (``planning.check``) against the snapshot it was made from. A plan that fails is not
kept, so it can never be approved or carried out; the refusal carries the checker's words."""

from __future__ import annotations

from typing import Any

from scheduler.engine import Outcome
from scheduler.planning.check import check_plan
from scheduler.service.store import Store


class PlanRefused(Exception):
    """The checker found the plan unsafe; the message lists what it saw."""

    def __init__(self, problems: list[str]) -> None:
        shown = "; ".join(problems[:3]) + (
            f"; +{len(problems) - 3} more" if len(problems) > 3 else ""
        )
        super().__init__(f"plan: refused by the checker: {shown}")
        self.problems = problems


def add_checked_plan(
    store: Store, goal: str, outcome: Outcome, document: dict[str, Any], at: float
) -> int:
    """Keep ``document`` as a proposed plan if ``outcome``'s plan passes the checker."""
    problems = check_plan(outcome.cluster, outcome.plan)
    if problems:
        raise PlanRefused(problems)
    return store.add_plan(goal, document, at)
