"""The scheduler's store on a real SQLite file: a restart loses nothing, a failed change
leaves nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.report import DomainReport, HostReport
from scheduler.model import HostState
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
    store.set_plan_status(plan_id, "approved", at=102.0, event="approved by ops")
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
    with pytest.raises(ValueError, match="status: unknown plan status 'finished'"):
        store.set_plan_status(plan_id, "finished", at=2.0, event="x")
    with pytest.raises(KeyError, match="plan 99 does not exist"):
        store.set_plan_status(99, "approved", at=2.0, event="x")
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
