"""Returning a host from maintenance: which VMs go back, which stay and why, and that the
plan passes the checker."""

from __future__ import annotations

from typing import Any

from scheduler.planning.check import check_plan
from scheduler.planning.maintenance import evacuated_from, move_back
from tests.conftest import cluster_of, hosts, vm


def evacuation(host: str, moves: dict[str, str]) -> dict[str, Any]:
    return {"evacuate": [host],
            "migrations": [{"step": 1, "vm": v, "from": host, "to": t} for v, t in moves.items()]}  # fmt: skip


def test_the_last_finished_evacuation_names_the_vms() -> None:
    history = [
        ("done", evacuation("h1", {"old": "h2"})),
        ("done", evacuation("h1", {"a": "h2", "b": "h3"})),
        ("proposed", evacuation("h1", {"never-ran": "h2"})),
        ("done", evacuation("h2", {"c": "h3"})),
    ]
    assert evacuated_from("h1", history) == ["a", "b"]
    assert evacuated_from("h3", history) == []


def test_vms_go_back_where_they_fit_and_the_others_stay_with_a_reason() -> None:
    # h1 (32 GiB) is back and empty; a and b (16 GiB each) left it, and since then c took room
    # on h1 for 8 GiB, so only one of them fits.
    data = {"name": "back", "hosts": hosts(3, memory="32GiB"),
            "vms": [vm("a", "16GiB", "h2"), vm("b", "16GiB", "h3"), vm("c", "8GiB", "h1")]}  # fmt: skip
    cluster = cluster_of(data)
    outcome, staying = move_back(cluster, "h1", ["a", "b", "gone"])
    placement = outcome.decision.placement
    assert placement["a"] == "h1" and placement["b"] == "h3"
    assert staying == {"b": "h1 has no room for it now, or a hard rule forbids it",
                       "gone": "no longer exists"}  # fmt: skip
    assert [(m.vm, m.source, m.target) for m in outcome.plan.moves] == [("a", "h2", "h1")]
    assert check_plan(outcome.cluster, outcome.plan) == []
