"""Automatic consolidation: worth it or not, within budget, and no ping-pong."""

from __future__ import annotations

from dataclasses import replace

from scheduler.planning.autopilot import AutomationPolicy, consider
from scheduler.planning.check import check_plan
from scheduler.rules import held_in_place
from scheduler.scenario.load import load_scenario
from tests.conftest import ROOT
from tests.test_properties import FAST

WEB = load_scenario(ROOT / "scenarios" / "web-tier-consolidation.yaml").cluster
AUTO = AutomationPolicy("automatic", interval_s=600)


def migrated(outcome: object) -> set[str]:
    return {m.vm for m in outcome.plan.moves if m.kind == "migrate"}  # type: ignore[attr-defined]


def test_a_consolidation_worth_doing_is_proposed_and_checks() -> None:
    outcome = consider(WEB, AUTO, 0, (), FAST)
    assert outcome is not None
    assert outcome.after.active_hosts < outcome.before.active_hosts
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_hysteresis_not_worth_it_and_no_ping_pong() -> None:
    assert consider(WEB, replace(AUTO, min_hosts_saved=100), 0, (), FAST) is None
    first = consider(WEB, AUTO, 0, (), FAST)
    assert first is not None
    placement = first.decision.placement
    after = WEB.moved_to(placement)
    assert consider(after, AUTO, 0, migrated(first), FAST) is None  # nothing left to gain


def test_the_hourly_move_budget_and_the_cooldown_hold() -> None:
    # 40 of 50 moves used this hour: 10 left, which still empties some hosts.
    budgeted = consider(WEB, replace(AUTO, max_moves_per_hour=50), 40, (), FAST)
    assert budgeted is not None
    assert 0 < budgeted.after.moves <= 10
    assert budgeted.after.active_hosts < budgeted.before.active_hosts
    assert check_plan(budgeted.cluster, budgeted.plan) == []
    assert consider(WEB, replace(AUTO, max_moves_per_hour=50), 50, (), FAST) is None
    cooling = {v.name for v in WEB.vms if v.host in ("kvm-12", "kvm-13")}
    outcome = consider(WEB, AUTO, 0, cooling, FAST)
    assert outcome is not None and not migrated(outcome) & cooling


def test_held_in_place_holds_each_vm_on_its_host() -> None:
    held = held_in_place(WEB, ["web-01"])
    hold = held.rules[-1]
    assert (hold.kind, hold.vms, hold.hosts) == (
        "hold",
        ("web-01",),
        (WEB.vm_by_name["web-01"].host,),
    )  # type: ignore[attr-defined]
