"""Carrying out a plan: a rolling window of live migrations, re-checked before each start.

Not fixed waves: whenever a slot is free (``max_parallel``, ``max_parallel_per_host``) the
next move of the plan is checked against the latest snapshot, with every migration in flight
counted on both its hosts: is the VM still on the source, is the destination up, is there
room, do the hard rules still hold? If so an order goes to the source host's agent, which
pulls it, migrates through libvirt and reports the outcome. A failed migration leaves the VM
on its source (the agent checks); the plan then stops (or carries on, by policy). A move
that can never start (its VM is elsewhere, its target is down) is given up; when nothing
runs and no move left may start (no room, a hard rule added since forbids it), the plan
ends failed with the reason, whatever the policy: waiting would be forever.

``next_moves`` is the decision and is pure; ``Executor`` is the loop around it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scheduler.model import Cluster, HostState
from scheduler.placement.state import PlacementState
from scheduler.planning.status import PlanStatus
from scheduler.planning.waves import starting_placement
from scheduler.service.records import OrderRecord
from scheduler.service.store import OPEN_ORDERS, Store

log = logging.getLogger("vmpack.executor")


@dataclass(frozen=True)
class PlannedMove:
    index: int  # position in the plan: a VM parked on the way has two moves
    vm: str
    source: str  # for a restart, the failed host it ran on
    target: str
    kind: str = "migrate"  # or "restart"


@dataclass(frozen=True)
class ExecutionPolicy:
    # "stop": no new migrations after a failure; "continue"; "replan": stop, then decide the
    # goal again from where the VMs are, holding the VMs that failed in place
    on_failure: str = "stop"
    bandwidth_mib_s: int = 0
    migration_timeout_s: float = 300.0
    order_timeout_s: float = 600.0  # an order no agent picked up or finished in this time fails
    tick_s: float = 0.5


@dataclass(frozen=True)
class Decision:
    start: list[PlannedMove]
    already_done: list[PlannedMove]
    impossible: list[tuple[PlannedMove, str]]  # never startable: given up
    waiting: list[tuple[PlannedMove, str]]  # not now: no room, or a hard rule forbids it


def next_moves(
    cluster: Cluster, remaining: Sequence[PlannedMove], in_flight: Sequence[PlannedMove]
) -> Decision:
    state = PlacementState(cluster, starting_placement(cluster))  # down hosts hold nothing
    busy: Counter[str] = Counter()
    for move in in_flight:
        if move.vm in state.presence and move.target not in state.presence[move.vm]:
            state.add(move.vm, move.target)  # present on both hosts while it migrates
        busy.update((move.source, move.target))
    limits = cluster.limits
    start: list[PlannedMove] = []
    done: list[PlannedMove] = []
    impossible: list[tuple[PlannedMove, str]] = []
    waiting: list[tuple[PlannedMove, str]] = []
    seen: set[str] = set()
    for move in remaining:
        if move.vm in seen:
            continue  # a VM's later move waits for its earlier one
        seen.add(move.vm)
        where = cluster.vm_by_name[move.vm].host if move.vm in cluster.vm_by_name else None
        if where == move.target:
            done.append(move)
            continue
        if where != move.source:
            impossible.append((move, f"{move.vm} is on {where}, the plan expected {move.source}"))
            continue
        source = cluster.host_by_name.get(move.source)
        if move.kind == "restart" and (source is None or source.state is not HostState.DOWN):
            impossible.append((move, f"{move.source} is not down: {move.vm} is not restarted"))
            continue
        target = cluster.host_by_name.get(move.target)
        if target is None or target.state is not HostState.UP:
            state_text = target.state.value if target else "unknown"
            impossible.append((move, f"{move.target} is {state_text}"))
            continue
        if len(in_flight) + len(start) >= limits.max_parallel:
            break
        if max(busy[move.source], busy[move.target]) >= limits.max_parallel_per_host:
            continue
        if not state.has_room(move.vm, move.target):
            waiting.append((move, f"no room for {move.vm} on {move.target}"))
        elif not state.rules_admit(move.vm, move.target, moving_with_group=True):
            waiting.append((move, f"a hard rule forbids {move.vm} on {move.target}"))
        else:
            state.add(move.vm, move.target)
            busy.update((move.source, move.target))
            start.append(move)
    return Decision(start, done, impossible, waiting)


def planned_moves(document: Mapping[str, Any]) -> list[PlannedMove]:
    """The moves the executor carries out: migrations, and restarts of VMs of failed hosts
    (a failover plan names each one's ``failed_host``). Placements of new VMs are advice."""
    restarts = [e for e in document.get("placements", []) if e.get("failed_host")]
    entries = sorted([*document.get("migrations", []), *restarts], key=lambda e: int(e["step"]))
    moves = []
    for i, entry in enumerate(entries):
        failed_host = entry.get("failed_host")
        source, kind = (failed_host, "restart") if failed_host else (entry["from"], "migrate")
        moves.append(PlannedMove(i, str(entry["vm"]), str(source), str(entry["to"]), kind))
    return moves


class Executor:
    """Runs approved plans, one thread each, and resumes running ones after a restart."""

    def __init__(
        self,
        store: Store,
        snapshot: Callable[[], Cluster],
        clock: Callable[[], float],
        policy: ExecutionPolicy,
        host_details: Callable[[str], dict[str, Any]],
        on_outcome: Callable[[str, str], None] = lambda _kind, _outcome: None,
        may_issue: Callable[[], bool] = lambda: True,
        epoch: Callable[[], int] = lambda: 0,
    ) -> None:
        self.store, self.snapshot, self.clock, self.policy = store, snapshot, clock, policy
        self.host_details = host_details
        self.on_outcome = on_outcome
        # Asked under the lock right before orders go out: only the leader issues them, and
        # each carries the epoch it leads in (agents refuse one from an older epoch).
        self.may_issue, self.epoch = may_issue, epoch
        self._cancel: dict[int, threading.Event] = {}
        self._threads: dict[int, threading.Thread] = {}
        self._reported: set[tuple[int, str]] = set()  # order outcomes already counted
        # Set by the service: decide a failed plan's goal again (the ``replan`` policy).
        self.replan: Callable[[int, list[str]], object] = lambda _plan, _failed: None
        self._stopping = threading.Event()  # the service is going away: plans stay "running"
        # Guards the maps above, and makes a cancel and the issuing of orders exclusive:
        # once ``cancel`` returns, the plan issues no new order.
        self._lock = threading.Lock()

    def start(self, plan_id: int) -> None:
        """Follow a running plan; a plan already followed is not followed twice."""
        with self._lock:
            running = self._threads.get(plan_id)
            if running is not None and running.is_alive():
                return
            self._cancel.setdefault(plan_id, threading.Event())
            thread = threading.Thread(
                target=self._run, args=(plan_id,), daemon=True, name=f"plan-{plan_id}"
            )
            self._threads[plan_id] = thread
            thread.start()

    def cancel(self, plan_id: int) -> None:
        """Stop a running plan: no order is issued after this returns; open ones are
        cancelled and the plan ends ``cancelled``. Also when it is not followed yet."""
        with self._lock:
            self._cancel.setdefault(plan_id, threading.Event()).set()

    def resume(self) -> list[int]:
        """After a restart: carry on with every plan that was running."""
        running = [p.id for p in self.store.plans() if p.status == "running"]
        for plan_id in running:
            self.store.add_plan_event(plan_id, self.clock(), "resumed after a scheduler restart")
            self.start(plan_id)
        return running

    def join(self, plan_id: int, timeout: float) -> None:
        with self._lock:
            thread = self._threads[plan_id]
        thread.join(timeout)

    def pause(self, timeout_s: float = 10.0) -> None:
        """Stop following plans, which stay ``running`` for whichever scheduler leads next
        (this one too, after ``resume``)."""
        self.shutdown(timeout_s)
        with self._lock:
            self._cancel.clear()
            self._threads.clear()
        self._stopping.clear()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop following plans without ending them: the next scheduler resumes them."""
        self._stopping.set()
        with self._lock:
            events, threads = list(self._cancel.values()), list(self._threads.values())
        for cancel in events:
            cancel.set()  # wakes the loops, which see _stopping first
        for thread in threads:
            thread.join(timeout_s)

    def _run(self, plan_id: int) -> None:
        try:
            self._loop(plan_id)
        except Exception as exc:  # a bug must not leave the plan "running" forever
            if self._stopping.is_set():
                return
            log.exception("plan %s", plan_id)
            self._finish(plan_id, "failed", f"executor error: {exc}")

    def _loop(self, plan_id: int) -> None:
        record = self.store.plan(plan_id)
        assert record is not None
        moves = planned_moves(record.document)
        on_failure = record.document.get("on_failure", self.policy.on_failure)
        failures: list[str] = []
        given_up: set[int] = set()  # moves that can never start (the VM is elsewhere...)
        stuck = False  # nothing runs, and no move left can start
        with self._lock:
            cancel = self._cancel[plan_id]
        while not self._stopping.is_set():
            orders = self._expire(self.store.orders(plan_id=plan_id))
            by_move = {int(o.details.get("move", -1)): o for o in orders}
            failures += self._new_failures(plan_id, orders)
            in_flight = [moves[i] for i, o in by_move.items() if o.status in OPEN_ORDERS]
            stopped = stuck or cancel.is_set() or (failures and on_failure in ("stop", "replan"))
            # Neither a failed move nor one given up is tried again.
            remaining = [m for m in moves if m.index not in by_move and m.index not in given_up]
            if stopped:
                why = "cancelled" if cancel.is_set() else "plan stopped after a failure"
                self._cancel_open(orders, why, abort_running=cancel.is_set())
                if not in_flight or cancel.is_set():
                    status = "cancelled" if cancel.is_set() else "failed"
                    if status == "failed" and on_failure == "replan":  # the next plan first:
                        failed = self.store.orders(plan_id=plan_id)  # never a gap with none
                        self.replan(plan_id, sorted({o.vm for o in failed if o.status == "failed"}))
                    self._finish(plan_id, status, "; ".join(failures) or "cancelled by an operator")
                    return
            elif not remaining and not in_flight:
                why = "; ".join(failures) or "all moves done"
                self._finish(plan_id, "failed" if failures else "done", why)
                return
            else:
                stuck = self._advance(
                    plan_id, moves, by_move, remaining, in_flight, failures, given_up, cancel
                )
                if stuck:
                    continue  # ends the plan at once, whatever the failure policy
            cancel.wait(self.policy.tick_s)

    def _advance(
        self, plan_id: int, moves: list[PlannedMove], by_move: Mapping[int, OrderRecord],
        remaining: list[PlannedMove], in_flight: list[PlannedMove], failures: list[str],
        given_up: set[int], cancel: threading.Event,
    ) -> bool:  # fmt: skip
        """Issue the moves that may start now; True if the plan is stuck: nothing runs and
        no move left can start (waiting would be forever, or until someone else acts)."""
        cluster = self._with_done_moves(self.snapshot(), moves, by_move)
        decision = next_moves(cluster, remaining, in_flight)
        given_up.update(move.index for move, _ in decision.impossible)
        with self._lock:  # a cancel waits for these orders, or comes before and stops them
            if cancel.is_set() or not self.may_issue():
                return False
            self._issue(plan_id, decision, in_flight, failures)
        if decision.start or in_flight or not decision.waiting:
            return False
        move, why = decision.waiting[0]
        failures.append(f"blocked: {why}")
        self.store.add_plan_event(plan_id, self.clock(), f"cannot move {move.vm} now: {why}")
        return True

    def _issue(
        self, plan_id: int, decision: Decision, in_flight: list[PlannedMove], failures: list[str],
    ) -> None:  # fmt: skip
        now = self.clock()
        for move in decision.already_done:
            self.store.add_plan_event(plan_id, now, f"{move.vm} already on {move.target}")
            order_id = self.store.add_order(
                plan_id, move.vm, move.source, move.target, now,
                {"move": move.index, "already_there": True},
            )  # fmt: skip
            self.store.update_order(order_id, "succeeded", now, error="already there")
        for move, reason in decision.impossible:
            failures.append(reason)
            self.store.add_plan_event(plan_id, now, f"cannot move {move.vm}: {reason}")
        for move in decision.start:
            details = self._order_details(move)
            if details is None:
                failures.append(f"no known definition of {move.vm} to restart it")
                self.store.add_plan_event(plan_id, now, f"cannot restart {move.vm}: no definition")
                continue
            self.store.add_order(plan_id, move.vm, move.source, move.target, now, details)

    def _order_details(self, move: PlannedMove) -> dict[str, Any] | None:
        if move.kind == "restart":
            definition = self.store.definition(move.vm)
            if definition is None:
                return None
            return {"move": move.index, "kind": "restart", "definition": definition,
                    "epoch": self.epoch()}  # fmt: skip
        return {"move": move.index, "epoch": self.epoch(), **self.host_details(move.target),
                "bandwidth_mib_s": self.policy.bandwidth_mib_s,
                "timeout_s": self.policy.migration_timeout_s}  # fmt: skip

    def _with_done_moves(
        self, cluster: Cluster, moves: list[PlannedMove], by_move: Mapping[int, OrderRecord]
    ) -> Cluster:
        """Reports may lag behind a finished migration: what succeeded is where the VM is."""
        done = [moves[i] for i, o in sorted(by_move.items()) if o.status == "succeeded"]
        moved = {m.vm: m.target for m in done}
        if not moved:
            return cluster
        return cluster.moved_to(moved)

    def _new_failures(self, plan_id: int, orders: list[OrderRecord]) -> list[str]:
        found = []
        for order in orders:
            key = (order.id, order.status)
            with self._lock:
                if order.status not in ("failed", "succeeded") or key in self._reported:
                    continue
                self._reported.add(key)
            if not order.details.get("already_there"):  # nothing moved: not a migration
                self.on_outcome(order.kind, order.status)
            if order.status == "failed":
                found.append(f"{order.vm} {order.source}->{order.target}: {order.error}")
        return found

    def _expire(self, orders: list[OrderRecord]) -> list[OrderRecord]:
        now = self.clock()
        fresh = []
        for order in orders:
            if order.status in OPEN_ORDERS and now - order.updated_at > self.policy.order_timeout_s:
                late = "no agent finished it in time"
                order = self.store.update_order(order.id, "failed", now, error=late)
            fresh.append(order)
        return fresh

    def _cancel_open(self, orders: list[OrderRecord], why: str, abort_running: bool) -> None:
        """Cancel pending orders; running ones too when an operator cancels (their agent sees
        the cancellation at its next poll and aborts the libvirt job)."""
        for order in orders:
            if order.status == "pending" or (order.status == "running" and abort_running):
                self.store.update_order(order.id, "cancelled", self.clock(), error=why)

    def _finish(self, plan_id: int, status: str, why: str) -> None:
        ending = PlanStatus(status)
        self.store.move_plan(
            plan_id, {PlanStatus.RUNNING}, ending, self.clock(), f"{status}: {why}"
        )
