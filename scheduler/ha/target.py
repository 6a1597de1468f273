"""The HA reserve inside a consolidation target: which hosts stay on is decided with the
reserve, not checked after it.

A target packed for the fewest active hosts may leave the reserve to empty hosts that happen
to share a rack with the busiest ones, and then many hosts must stay on. So under an HA policy
consolidation weighs two targets by the hosts they keep powered on (active hosts plus the
empty hosts the reserve keeps on, as ``power.py`` finds them):

- the reserve-free answer of the pipeline, with the reserve's hosts added afterwards;
- a reserve-aware one: the fewest hosts of each model and failure domain whose capacity
  still covers every VM after any failure the policy names (``select_hosts`` with the
  reserve), the busiest of them kept, the other VMs packed onto them best fit.

The fewer powered hosts win, then the goal's own order (fewer moves). The answer reports
both figures: what the reserve costs, in hosts, against the reserve-free answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scheduler.ha.power import PowerAdvice, power_advice
from scheduler.model import Cluster, Goal
from scheduler.placement.evaluate import indicators, score
from scheduler.solver.budget import Budget
from scheduler.solver.starts.keep_set import keep_set_start

KEEP_SET_SHARE = 0.15  # of the budget, for the reserve-aware choice of hosts


@dataclass(frozen=True)
class ReserveCost:
    reserve_free_hosts: int  # active hosts of the pipeline's answer, before any reserve
    powered_hosts: int  # hosts on in the chosen target: active plus kept for the reserve
    reserve_aware: bool  # the reserve-aware target was chosen
    power: PowerAdvice  # of the chosen target, so that the plan's figures need not ask again

    @property
    def hosts(self) -> int:
        return self.powered_hosts - self.reserve_free_hosts


def powered_hosts(cluster: Cluster, placement: Mapping[str, str | None]) -> int:
    """Active hosts and the empty hosts the reserve keeps on; every host that may receive VMs
    when the reserve cannot hold at all."""
    return _powered(cluster, placement, power_advice(cluster, placement))


def _powered(cluster: Cluster, placement: Mapping[str, str | None], advice: PowerAdvice) -> int:
    if not advice.reserve_holds:
        return sum(1 for h in cluster.hosts if h.accepts_vms)
    return indicators(cluster, placement).active_hosts + len(advice.kept_for_reserve)


def with_reserve(
    cluster: Cluster, goal: Goal, reserve_free: Mapping[str, str | None], budget: Budget
) -> tuple[Mapping[str, str | None], ReserveCost]:
    """The target to keep: the reserve-free one or the reserve-aware one, whichever keeps
    fewer hosts on (then the goal's order), and what the reserve costs."""
    free_hosts = indicators(cluster, reserve_free).active_hosts
    free_advice = power_advice(cluster, reserve_free)
    free_powered = _powered(cluster, reserve_free, free_advice)
    reserve = cluster.policy.ha
    aware = keep_set_start(cluster, cluster.current_placement, budget, reserve=reserve)
    if aware is not None and _admissible(cluster, reserve_free, aware):
        aware_advice = power_advice(cluster, aware)
        aware_powered = _powered(cluster, aware, aware_advice)
        if (aware_powered, score(cluster, goal, aware)) < (
            free_powered, score(cluster, goal, reserve_free)
        ):  # fmt: skip
            return aware, ReserveCost(free_hosts, aware_powered, True, aware_advice)
    return reserve_free, ReserveCost(free_hosts, free_powered, False, free_advice)


def _admissible(
    cluster: Cluster, reserve_free: Mapping[str, str | None], aware: Mapping[str, str | None]
) -> bool:
    """Every VM the reserve-free target places keeps a host, within the move budget."""
    budget = cluster.limits.max_moves
    if budget is not None and indicators(cluster, aware).moves > budget:
        return False
    return all(aware.get(vm) is not None for vm, host in reserve_free.items() if host)
