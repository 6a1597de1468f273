"""Racing calls on one plan, through the real API: of concurrent changes exactly one wins and
the others get 409; a cancelled plan issues no new order; an operator and the autopilot
never both get their way.

Each race starts its callers at a barrier, so that they reach the service together."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from scheduler.planning.autopilot import AutomationPolicy
from scheduler.planning.status import FINISHED
from tests.lab_cluster import wait_for
from tests.service_harness import OPERATOR_TOKEN, Clock, Service, running_service
from tests.test_service import reported


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once, each in its own thread, and return their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def approved_consolidation(service: Service) -> int:
    ops = service.client(OPERATOR_TOKEN)
    created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3}).json()
    assert ops.post(f"/v1/plans/{created['id']}/approve").status_code == 200
    return int(created["id"])


def post(service: Service, path: str) -> Callable[[], int]:
    def call() -> int:
        with service.client(OPERATOR_TOKEN) as client:
            return client.post(path).status_code

    return call


def finished(service: Service, plan_id: int) -> str:
    def done() -> bool:
        record = service.store.plan(plan_id)
        return record is not None and record.status in FINISHED

    wait_for(done, 30, f"plan {plan_id} to finish")
    record = service.store.plan(plan_id)
    assert record is not None
    return record.status


def test_twenty_concurrent_applies_start_one_run_and_one_order_per_move(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)
        plan_id = approved_consolidation(service)
        codes = race([post(service, f"/v1/plans/{plan_id}/apply")] * 20)
        assert sorted(Counter(codes).items()) == [(200, 1), (409, 19)]
        wait_for(lambda: len(service.store.orders(plan_id=plan_id)) == 2, 30, "the two orders")
        per_move = Counter(o.details["move"] for o in service.store.orders(plan_id=plan_id))
        assert set(per_move.values()) == {1}  # the agents never act: the orders stay pending
        events = [e for _, e in service.store.plan_events(plan_id)]
        assert events.count("running") == 1
        assert post(service, f"/v1/plans/{plan_id}/cancel")() == 200
        assert finished(service, plan_id) == "cancelled"


def test_apply_racing_cancel_ends_cancelled_with_every_order_cancelled(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)
        for _ in range(5):  # either may reach the store first: both ways end the same
            plan_id = approved_consolidation(service)
            apply, cancel = race(
                [post(service, f"/v1/plans/{plan_id}/apply"),
                 post(service, f"/v1/plans/{plan_id}/cancel")]
            )  # fmt: skip
            assert cancel == 200 and apply in (200, 409)
            assert finished(service, plan_id) == "cancelled"
            orders = service.store.orders(plan_id=plan_id)
            assert all(o.status == "cancelled" for o in orders), orders
            assert service.store.orders(plan_id=plan_id) == orders  # and no new one comes


def test_an_operator_approving_races_the_autopilot_superseding(tmp_path: Path) -> None:
    automation = AutomationPolicy("approve", interval_s=60)
    clock = Clock()
    with running_service(tmp_path / "vmpack.db", clock, automation=automation) as service:
        team = reported(tmp_path, service)

        def automatic() -> list[int]:
            return [p.id for p in service.store.plans() if p.document.get("by") == "autopilot"]

        def later(seconds: float) -> None:
            """The clock moves on and every host is heard from at the new time, with the
            autopilot's own loop held off meanwhile: a decision between the two would find
            the hosts silent, save nothing, and still take the interval's turn."""
            with service.autopilot._deciding:
                clock.now += seconds
                assert all(agent.beat() for agent in team)

        # The first decision may come before the reports (on an empty cluster) or after: the
        # next one is due an interval later, with every host heard from again at that time.
        later(61)
        wait_for(lambda: len(automatic()) >= 1, 30, "an automatic proposal")
        wait_for(lambda: service.store.plan(max(automatic())).status == "proposed", 30, "it")  # type: ignore[union-attr]
        first, known = max(automatic()), len(automatic())
        later(120)  # the next decision supersedes it, unless an operator approves it first
        approve, _ = race([post(service, f"/v1/plans/{first}/approve"), service.autopilot.tick])
        wait_for(lambda: len(automatic()) == known + 1, 30, "the next automatic proposal")
        status = service.store.plan(first).status  # type: ignore[union-attr]
        if approve == 200:
            assert status == "approved"  # the operator's approval stands
        else:
            assert (approve, status) == (409, "cancelled")


def test_a_plan_the_checker_refuses_is_never_kept(tmp_path: Path) -> None:
    """The gate every stored plan passes, fed a plan made for another cluster: the checker's
    words come back, and the store holds no plan."""
    from dataclasses import replace

    from scheduler.engine import decide_plan, plan_to_json
    from scheduler.model import Goal
    from scheduler.service.checked import PlanRefused, add_checked_plan
    from scheduler.service.sqlite_store import SqliteStore
    from tests.conftest import cluster_of, hosts, vm

    cluster = cluster_of({"name": "t", "hosts": hosts(2), "vms": [
        vm("a", host="h1"), vm("b", host="h2")]})  # fmt: skip
    outcome = decide_plan(cluster, Goal.CONSOLIDATE)
    assert outcome.plan.moves  # one VM moves next to the other
    shrunk = cluster.replace_hosts(
        replace(h, capacity={**h.capacity, "memory_mib": 8192}) for h in cluster.hosts
    )  # each host now holds one VM only: the same plan overloads one
    store = SqliteStore(tmp_path / "vmpack.db")
    elsewhere = replace(outcome, decision=replace(outcome.decision, cluster=shrunk))
    with pytest.raises(PlanRefused, match=r"plan: refused by the checker: .*memory_mib"):
        add_checked_plan(store, "consolidate", elsewhere, {}, 1.0)
    assert store.plans() == []
    assert add_checked_plan(store, "consolidate", outcome, plan_to_json(outcome), 1.0) == 1
    store.close()
