"""The store's contract, on both backends (a real SQLite file and a real PostgreSQL
database): a restart loses nothing, a failed change leaves nothing half-written, and of
racing changes to one plan, from several stores on one database, exactly one wins."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agents.report import DomainReport, HostReport
from scheduler.model import HostState
from scheduler.planning.status import PlanConflict, PlanStatus
from scheduler.service.backends import open_store
from scheduler.service.migrations import LATEST, MIGRATIONS
from scheduler.service.records import Claim, PolicyRecord
from scheduler.service.sqlite_store import SqliteStore
from scheduler.service.store import AlreadyExists, StoreUnavailable

REPORT = HostReport(
    "kvm-01", 16, 65536, 0, (DomainReport("web1", "u-1", 2, 4096, 0, "running", True, 10),)
)


def test_everything_survives_a_restart(store_url: str) -> None:
    store = open_store(store_url)
    store.save_report(REPORT, at=100.0)
    store.set_host_state("kvm-02", HostState.MAINTENANCE)
    plan_id = store.add_plan("consolidate", {"migrations": [{"vm": "web1"}]}, at=101.0)
    store.move_plan(plan_id, {PlanStatus.PROPOSED}, PlanStatus.APPROVED, 102.0, "approved by ops")
    store.close()

    again = open_store(store_url)
    assert again.reports() == [(REPORT, 100.0)]
    assert again.host_states() == {"kvm-01": HostState.UP, "kvm-02": HostState.MAINTENANCE}
    plan = again.plan(plan_id)
    assert (
        plan is not None
        and plan.status == "approved"
        and plan.document["migrations"][0]["vm"] == "web1"
    )
    assert again.plan_events(plan_id) == [(101.0, "proposed"), (102.0, "approved by ops")]


def test_newer_report_replaces_older(store_url: str) -> None:
    store = open_store(store_url)
    store.save_report(REPORT, at=1.0)
    newer = HostReport("kvm-01", 16, 65536, 0, ())
    store.save_report(newer, at=2.0)
    store.save_report(REPORT, at=1.5)  # an older report that crossed the newer on the way
    assert store.reports() == [(newer, 2.0)]


def test_bad_changes_are_refused_and_change_nothing(store_url: str) -> None:
    store = open_store(store_url)
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

    from scheduler.service.migrations import TABLES, TYPES

    path = tmp_path / "old.db"  # as the first release wrote it: no schema version, no progress
    old = sqlite3.connect(path)
    old.executescript(TABLES.format(**TYPES["sqlite"]))
    old.close()
    store = SqliteStore(path)
    plan = store.add_plan("consolidate", {}, at=1.0)
    order = store.add_order(plan, "v", "a", "b", 1.0, {})
    assert store.update_order(order, "running", 2.0, progress_pct=42.5).progress_pct == 42.5
    with pytest.raises(ValueError, match="already succeeded"):
        store.update_order(order, "succeeded", 3.0)
        store.update_order(order, "running", 4.0, progress_pct=50.0)


def test_racing_status_changes_have_exactly_one_winner(store_url: str) -> None:
    """Twenty threads over four stores on one database (as four schedulers would be), each
    thread with its own connection, approve, cancel or run the same plan at once: exactly
    one change happens, and the plan's history holds exactly one step."""
    stores = [open_store(store_url) for _ in range(4)]
    store = stores[0]
    plan_id = store.add_plan("consolidate", {}, at=1.0)
    start = threading.Barrier(20)
    targets = [PlanStatus.APPROVED, PlanStatus.CANCELLED, PlanStatus.RUNNING, PlanStatus.APPROVED]

    def attempt(i: int) -> PlanStatus | None:
        start.wait()
        try:
            stores[i % 4].move_plan(plan_id, {PlanStatus.PROPOSED}, targets[i % 4], 2.0, f"{i}")
        except PlanConflict:
            return None
        return targets[i % 4]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    winners = [o for o in outcomes if o is not None]
    assert len(winners) == 1
    assert store.plan(plan_id).status == winners[0]  # type: ignore[union-attr]
    assert len(store.plan_events(plan_id)) == 2  # proposed, then the one winning step
    for each in stores:
        each.close()


def test_orders_claims_fencing_and_policies_keep_their_contract(store_url: str) -> None:
    store = open_store(store_url)
    plan = store.add_plan("failover", {}, at=1.0)
    moved = store.add_order(plan, "a", "h1", "h2", 1.0, {"move": 0})
    restarted = store.add_order(plan, "b", "h3", "h2", 1.0, {"move": 1, "kind": "restart"})
    assert [o.id for o in store.orders(host="h1")] == [moved]  # the source's agent migrates
    assert [o.id for o in store.orders(host="h2")] == [restarted]  # the target restarts
    store.update_order(restarted, "succeeded", 2.0, seconds=3.5)
    with pytest.raises(ValueError, match="already succeeded"):
        store.update_order(restarted, "failed", 3.0)
    assert store.superseded("h3") == {"b"}  # h3's copy of b is stale now
    claim = Claim("new", "h2", {"vcpus": 2, "gpu": 1}, 1.0, 10.0, {"app": "db"})
    store.add_claims([claim])
    with pytest.raises(AlreadyExists, match="'new' already holds a claim"):
        store.add_claims([Claim("other", "h1", {}, 1.0, 10.0), claim])
    assert store.claims(5.0) == [claim] and store.claims(10.0) == []  # none half-added
    assert store.drop_claims(["new", "ghost"]) == 1
    store.set_fencing("h3", "fenced", "bmc said off", 4.0)
    assert store.fencing()["h3"].detail == "bmc said off"
    store.clear_fencing("h3")
    assert store.fencing() == {}
    assert store.policy() is None
    assert store.add_policy({"rules": []}, 5.0, "ops") == 1
    assert store.add_policy({"rules": [{"type": "pin"}]}, 6.0, "ops") == 2
    assert store.policy() == PolicyRecord(2, 6.0, "ops", {"rules": [{"type": "pin"}]})
    assert store.report_times() == {} and store.host_states() == {}
    store.close()


def test_the_schema_is_versioned_and_a_newer_one_is_refused(store_url: str) -> None:
    store = open_store(store_url)
    open_store(store_url).close()  # a second start applies nothing again
    with store.together():
        db = store._db  # type: ignore[attr-defined]
        versions = [row[0] for row in db.execute("SELECT version FROM schema_version").fetchall()]
        assert versions == [m[0] for m in MIGRATIONS]
        db.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST + 1,))
    store.close()
    with pytest.raises(RuntimeError, match=f"schema version {LATEST + 1} is newer"):
        open_store(store_url)


def test_an_unreachable_database_is_one_line_without_the_password() -> None:
    with pytest.raises(StoreUnavailable) as refused:
        open_store("postgresql://vmpack:s3cret@127.0.0.1:9/vmpack")
    assert "s3cret" not in str(refused.value) and "vmpack:***@127.0.0.1:9" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_lease_is_renewed_by_its_holder_and_taken_only_once_expired(store_url: str) -> None:
    one, two = open_store(store_url), open_store(store_url)  # two schedulers, one database
    first = one.claim_lease("s1", "http://s1:8700", None, now=100.0, lease_s=10.0)
    assert (first.holder, first.epoch, first.expires_at) == ("s1", 1, 110.0)
    assert two.claim_lease("s2", "http://s2:8700", None, 105.0, 10.0) == first  # still valid
    renewed = one.claim_lease("s1", "http://s1:8700", 1, 108.0, 10.0)
    assert (renewed.epoch, renewed.expires_at) == (1, 118.0)
    taken = two.claim_lease("s2", "http://s2:8700", None, 118.5, 10.0)  # s1 stopped renewing
    assert (taken.holder, taken.url, taken.epoch) == ("s2", "http://s2:8700", 2)
    late = one.claim_lease("s1", "http://s1:8700", 1, 119.0, 10.0)  # s1 wakes up: deposed
    assert late == taken
    two.release_lease("s2", 2)  # a clean stop: the next try takes it at once
    assert one.claim_lease("s1", "http://s1:8700", None, 120.0, 10.0).epoch == 3
    one.release_lease("s2", 2)  # not s2's any more: nothing happens
    assert two.claim_lease("s2", "http://s2:8700", None, 121.0, 10.0).holder == "s1"


def test_racing_takeovers_have_exactly_one_winner(store_url: str) -> None:
    stores = [open_store(store_url) for _ in range(6)]
    start = threading.Barrier(6)

    def attempt(i: int) -> str:
        start.wait()
        return stores[i].claim_lease(f"s{i}", f"http://s{i}", None, 50.0, 10.0).holder

    with ThreadPoolExecutor(6) as pool:
        holders = set(pool.map(attempt, range(6)))
    assert len(holders) == 1
    assert stores[0].claim_lease("x", "http://x", None, 55.0, 10.0).epoch == 1


def test_a_new_leader_adopts_the_orders_no_agent_took(store_url: str) -> None:
    store = open_store(store_url)
    plan = store.add_plan("evacuate", {}, at=1.0)
    taken = store.add_order(plan, "a", "h1", "h2", 1.0, {"move": 0, "epoch": 1})
    waiting = store.add_order(plan, "b", "h1", "h3", 1.0, {"move": 1, "epoch": 1})
    store.update_order(taken, "running", 2.0)
    assert store.restamp_pending_orders(2) == 1
    assert store.order(waiting).details == {"move": 1, "epoch": 2}  # type: ignore[union-attr]
    assert store.order(taken).details["epoch"] == 1  # type: ignore[union-attr]
