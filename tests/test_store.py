"""The scheduler's store on a real SQLite file: a restart loses nothing, a failed change
leaves nothing half-written."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agents.report import DomainReport, HostReport
from scheduler.model import HostState
from scheduler.planning.status import PlanConflict, PlanStatus
from scheduler.service.store import SqliteStore

REPORT = HostReport(
    "kvm-01", 16, 65536, 0, (DomainReport("web1", "u-1", 2, 4096, 0, "running", True, 10),)
)


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "vmpack.db"
    store = SqliteStore(path)
    store.save_report(REPORT, at=100.0)
    store.set_host_state("kvm-02", HostState.MAINTENANCE)
    plan_id = store.add_plan("consolidate", {"migrations": [{"vm": "web1"}]}, at=101.0)
    store.move_plan(plan_id, {PlanStatus.PROPOSED}, PlanStatus.APPROVED, 102.0, "approved by ops")
    store.close()

    again = SqliteStore(path)
    assert again.reports() == [(REPORT, 100.0)]
    assert again.host_states() == {"kvm-01": HostState.UP, "kvm-02": HostState.MAINTENANCE}
    plan = again.plan(plan_id)
    assert (
        plan is not None
        and plan.status == "approved"
        and plan.document["migrations"][0]["vm"] == "web1"
    )
    assert again.plan_events(plan_id) == [(101.0, "proposed"), (102.0, "approved by ops")]


def test_newer_report_replaces_older(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vmpack.db")
    store.save_report(REPORT, at=1.0)
    newer = HostReport("kvm-01", 16, 65536, 0, ())
    store.save_report(newer, at=2.0)
    assert store.reports() == [(newer, 2.0)]


def test_bad_changes_are_refused_and_change_nothing(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vmpack.db")
    plan_id = store.add_plan("consolidate", {}, at=1.0)
    with pytest.raises(PlanConflict, match="cannot make plan 1 done: it is proposed"):
        store.move_plan(plan_id, {PlanStatus.PROPOSED}, PlanStatus.DONE, 2.0, "x")  # no such step
    with pytest.raises(PlanConflict, match="cannot make plan 1 running: it is proposed"):
        store.move_plan(plan_id, {PlanStatus.APPROVED}, PlanStatus.RUNNING, 2.0, "x")  # stale
    with pytest.raises(KeyError, match="plan 99 does not exist"):
        store.move_plan(99, {PlanStatus.PROPOSED}, PlanStatus.APPROVED, 2.0, "x")
    assert store.plan(plan_id).status == "proposed"  # type: ignore[union-attr]
    assert store.plan_events(plan_id) == [(1.0, "proposed")]
    assert store.plan_events(99) == []


def test_a_store_from_before_progress_was_kept_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    from scheduler.service.store import SCHEMA

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace(",\n    progress_pct REAL", ""))
    old.close()
    store = SqliteStore(path)
    plan = store.add_plan("consolidate", {}, at=1.0)
    order = store.add_order(plan, "v", "a", "b", 1.0, {})
    assert store.update_order(order, "running", 2.0, progress_pct=42.5).progress_pct == 42.5
    with pytest.raises(ValueError, match="already succeeded"):
        store.update_order(order, "succeeded", 3.0)
        store.update_order(order, "running", 4.0, progress_pct=50.0)


def test_racing_status_changes_have_exactly_one_winner(tmp_path: Path) -> None:
    """Twenty threads, each with its own connection, approve, cancel or run the same plan at
    once: exactly one change happens, and the plan's history holds exactly one step."""
    store = SqliteStore(tmp_path / "vmpack.db")
    plan_id = store.add_plan("consolidate", {}, at=1.0)
    start = threading.Barrier(20)
    targets = [PlanStatus.APPROVED, PlanStatus.CANCELLED, PlanStatus.RUNNING, PlanStatus.APPROVED]

    def attempt(i: int) -> PlanStatus | None:
        start.wait()
        try:
            store.move_plan(plan_id, {PlanStatus.PROPOSED}, targets[i % 4], 2.0, f"try {i}")
        except PlanConflict:
            return None
        return targets[i % 4]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    assert store.plan(plan_id).status == winners[0]  # type: ignore[union-attr]
    assert len(store.plan_events(plan_id)) == 2  # proposed, then the one winning step
    store.close()
