"""The service's automation: repair of broken rules, periodic consolidation, and re-planning
after a failure.

``Autopilot.tick`` runs every ``tick_s`` while no plan runs. A hard rule the cluster breaks
(added after its VMs were placed, or broken by a host back from failure) is repaired first,
at any tick: ``scheduler.planning.autopilot.repair`` (a repair that cannot be made whole is
tried again after ``REPAIR_RETRY_S``; while a repair plan waits for an operator nothing else
is proposed). Otherwise,
when ``interval_s`` has passed, it asks ``consider`` for a consolidation (moves of the last
hour by automatic plans count against the budget; VMs moved within the cooldown stay put).
The plan is proposed (levels ``recommend`` and ``approve``, superseding an older automatic
proposal) or approved and applied at once (``automatic``).

``replan`` is the executor's ``replan`` failure policy: the failed plan's goal is decided again
from the current state, with every VM whose migration failed in the chain held in place, at
most ``MAX_REPLANS`` times in a row.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from scheduler.engine import Outcome, decide_plan, plan_to_json
from scheduler.model import Cluster, Goal
from scheduler.planning.autopilot import (
    AutomationPolicy,
    consider,
    repair,
    rules_broken,
)
from scheduler.planning.status import PlanConflict, PlanStatus
from scheduler.rules import held_in_place
from scheduler.service.checked import add_checked_plan
from scheduler.service.loops.ticker import Ticker
from scheduler.service.records import OrderRecord, PlanRecord
from scheduler.service.store import Store
from scheduler.solver.options import SearchOptions

log = logging.getLogger("vmpack.autopilot")

MAX_REPLANS = 3
HOUR_S = 3600.0
REPAIR_RETRY_S = 60.0


class Autopilot:
    def __init__(
        self,
        store: Store,
        snapshot: Callable[[], Cluster],
        clock: Callable[[], float],
        policy: AutomationPolicy,
        start_plan: Callable[[int], None],
        on_decided: Callable[[str, Outcome], None],
        options: SearchOptions,
    ) -> None:
        self.store, self.snapshot, self.clock, self.policy = store, snapshot, clock, policy
        self.start_plan, self.on_decided, self.options = start_plan, on_decided, options
        self._last: float | None = None
        self._repair_tried: float | None = None  # when a repair last found no whole plan
        self._deciding = threading.Lock()  # one consolidation decided at a time
        self._ticker = Ticker("autopilot", self.tick)

    def start(self, tick_s: float) -> None:
        # Automatic level: broken rules are repaired even with no periodic consolidation.
        if self.policy.interval_s > 0 or self.policy.level == "automatic":
            self._ticker.start(tick_s)

    def stop(self) -> None:
        self._ticker.stop()

    def tick(self) -> int | None:
        """The id of the plan created now, if any."""
        with self._deciding:
            return self._decide()

    def _decide(self) -> int | None:
        now = self.clock()
        plans = self.store.plans()
        if any(p.status == "running" for p in plans):
            return None  # one change at a time
        if any(p.goal == "repair" and p.status in ("proposed", "approved") for p in plans):
            return None  # an operator has a repair to decide on: it comes first
        snapshot = self.snapshot()
        goal, outcome = "repair", self._repair(snapshot, now)
        if outcome is None:
            interval = self.policy.interval_s
            if interval <= 0 or (self._last is not None and now - self._last < interval):
                return None
            self._last = now
            moved_last_hour, cooling = self._recent_moves(plans, now)
            goal = "consolidate"
            outcome = consider(snapshot, self.policy, moved_last_hour, cooling, self.options)
        for plan in plans:
            if plan.status == "proposed" and plan.document.get("by") == "autopilot":
                # An operator may approve it meanwhile: then it stands, and this gives way.
                with contextlib.suppress(PlanConflict):
                    self.store.move_plan(
                        plan.id, {PlanStatus.PROPOSED}, PlanStatus.CANCELLED, now, "superseded"
                    )
        if outcome is None:
            return None
        document = plan_to_json(outcome) | {"evacuate": [], "by": "autopilot", "not_placed": {}}
        self.on_decided(goal, outcome)
        plan_id = add_checked_plan(self.store, goal, outcome, document, now)
        if self.policy.level == "automatic":
            self._approve_and_run(plan_id, now, "approved automatically", "applied automatically")
        return plan_id

    def _repair(self, cluster: Cluster, now: float) -> Outcome | None:
        """A repair to make now, if a hard rule is broken (one that could not be made whole
        is tried again after a while, not at every tick)."""
        if self._repair_tried is not None and now - self._repair_tried < REPAIR_RETRY_S:
            return None
        if not rules_broken(cluster):
            return None
        outcome = repair(cluster, self.options)
        self._repair_tried = None if outcome is not None else now
        return outcome

    def _recent_moves(self, plans: list[PlanRecord], now: float) -> tuple[int, set[str]]:
        automatic = {p.id for p in plans if p.document.get("by") == "autopilot"}
        moved = [o for o in self.store.orders() if _a_migration_done(o)]
        last_hour = sum(1 for o in moved if o.plan_id in automatic and now - o.updated_at < HOUR_S)
        cooling = {o.vm for o in moved if now - o.updated_at < self.policy.vm_cooldown_s}
        return last_hour, cooling

    def replan(self, plan_id: int, failed_vms: list[str]) -> int | None:
        record = self.store.plan(plan_id)
        if record is None or record.goal not in ("consolidate", "balance", "evacuate", "repair"):
            return None
        depth = int(record.document.get("replans", 0))
        now = self.clock()
        if depth >= MAX_REPLANS:
            self.store.add_plan_event(plan_id, now, f"not re-planned: {MAX_REPLANS} in a row")
            return None
        held = sorted({*record.document.get("held", []), *failed_vms})
        hosts = list(record.document.get("evacuate", []))
        cluster = held_in_place(self.snapshot(), held)
        outcome = decide_plan(cluster, Goal(record.goal), hosts, self.options)
        if not outcome.plan.moves:
            self.store.add_plan_event(plan_id, now, "nothing left to re-plan")
            return None
        self.on_decided(record.goal, outcome)
        document: dict[str, Any] = plan_to_json(outcome) | {
            "evacuate": hosts, "replans": depth + 1, "replan_of": plan_id, "held": held,
            "not_placed": {}, "by": record.document.get("by", "operator"),
        }  # fmt: skip
        new_id = add_checked_plan(self.store, record.goal, outcome, document, now)
        self._approve_and_run(
            new_id, now, f"re-planned after plan {plan_id}", f"holding {', '.join(held)} in place"
        )
        self.store.add_plan_event(plan_id, now, f"re-planned as plan {new_id}")
        return new_id

    def _approve_and_run(self, plan_id: int, now: float, approved: str, running: str) -> None:
        """A plan of its own, just made: approved and started, unless cancelled meanwhile."""
        try:
            self.store.move_plan(plan_id, {PlanStatus.PROPOSED}, PlanStatus.APPROVED, now, approved)
            self.store.move_plan(plan_id, {PlanStatus.APPROVED}, PlanStatus.RUNNING, now, running)
        except PlanConflict as conflict:
            log.info("plan %s not started: %s", plan_id, conflict)
            return
        self.start_plan(plan_id)


def _a_migration_done(order: OrderRecord) -> bool:
    done = order.status == "succeeded" and order.kind == "migrate"
    return done and not order.details.get("already_there")
