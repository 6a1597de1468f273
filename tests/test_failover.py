"""Failover in the engine: a host or a rack fails; its VMs restart on the survivors by
priority, within capacity and hard rules; every plan passes the independent checker."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.ha.failover import decide_failover, hosts_in_domain
from scheduler.planning.check import check_plan
from scheduler.solver.options import SearchOptions
from tests.conftest import cluster_of, hosts, vm
from tests.test_properties import FAST, clusters


def restarts_of(data: dict[str, Any], failed: list[str], options: SearchOptions = FAST) -> Any:
    cluster = cluster_of(data)
    result = decide_failover(cluster, failed, options)
    assert check_plan(result.outcome.cluster, result.outcome.plan) == []
    return result


def test_a_failed_hosts_vms_restart_on_the_survivors() -> None:
    data = {"name": "f", "hosts": hosts(3), "vms": [
        vm("a", host="h1"), vm("b", host="h1"), vm("c", host="h2"), vm("d", host="h3")]}  # fmt: skip
    result = restarts_of(data, ["h1"])
    assert set(result.restarts) == {"a", "b"} and set(result.restarts.values()) <= {"h2", "h3"}
    assert result.not_restarted == {}
    kinds = {m.vm: m.kind for m in result.outcome.plan.moves}
    assert kinds == {"a": "restart", "b": "restart"}  # nothing that runs is moved


def test_priority_decides_who_restarts_when_room_is_short() -> None:
    # Survivor h2 has 32 GiB free; the failed host ran 3 x 16 GiB.
    data = {"name": "p", "hosts": hosts(2), "vms": [
        vm("batch", "16GiB", "h1", priority=0), vm("db", "16GiB", "h1", priority=10),
        vm("web", "16GiB", "h1", priority=5), vm("other", "32GiB", "h2")]}  # fmt: skip
    result = restarts_of(data, ["h1"])
    assert sorted(result.restarts) == ["db", "web"]
    assert list(result.not_restarted) == ["batch"]
    assert "no room" in result.not_restarted["batch"] or "memory" in result.not_restarted["batch"]


def test_hard_rules_hold_for_restarted_vms() -> None:
    data = {"name": "r", "hosts": hosts(3), "vms": [
        vm("db1", host="h1", priority=3), vm("db2", host="h2"), vm("db3", host="h3"),
        vm("app", host="h1")],
        "rules": [{"type": "anti-affinity", "vms": ["db1", "db2", "db3"]},
                  {"type": "pin", "vms": ["app"], "hosts": ["h1", "h2"]}]}  # fmt: skip
    result = restarts_of(data, ["h1"])
    assert result.restarts == {"app": "h2"}
    assert "anti-affinity" in result.not_restarted["db1"]


def test_a_whole_rack_fails_at_once() -> None:
    racked = [{"name": f"h{i}", "cpus": 16, "memory": "64GiB", "labels": {"rack": f"r{i % 2}"}}
              for i in range(4)]  # fmt: skip
    data = {"name": "rack", "hosts": racked,
            "vms": [vm(f"v{i}", "8GiB", f"h{i % 4}") for i in range(8)]}  # fmt: skip
    cluster = cluster_of(data)
    failed = hosts_in_domain(cluster, "rack", "r0")
    assert failed == ("h0", "h2")
    result = decide_failover(cluster, failed, FAST)
    assert set(result.restarts.values()) <= {"h1", "h3"} and len(result.restarts) == 4
    assert check_plan(result.outcome.cluster, result.outcome.plan) == []


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters(), st.data())
def test_every_failover_plan_passes_the_checker(data: dict[str, Any], draw: st.DataObject) -> None:
    for row in data["vms"]:
        row["priority"] = draw.draw(st.integers(0, 2))
    names = [h["name"] for h in data["hosts"]]
    failed = draw.draw(st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True))
    result = restarts_of(data, failed)
    victims = {r["name"] for r in data["vms"] if r.get("host") in failed}
    assert set(result.restarts) | set(result.not_restarted) == victims
    assert not set(result.restarts.values()) & set(failed)
