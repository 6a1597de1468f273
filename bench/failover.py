"""Failover and the HA reserve on a large consolidated cluster.

    python -m bench.failover --size 1000x10000 --time-limit 55

A generated cluster is consolidated first (as an operator would before powering hosts off).
Then, all measured in the same run:
- the consolidation plan's waves ordered to keep the N+1 and the one-rack reserve after every
  wave, against the plain order (no reserve) checked under the same policy;
- the HA reserve's cost: empty hosts that may be powered off with no reserve (the baseline),
  with N+1, and with one rack's failure covered, and the seconds to decide each;
- failover of the most loaded host and of the most loaded rack: seconds to decide, VMs
  restarted and left without a host, against a first-fit restart baseline (largest VM first,
  first host with room and rules), and whether the independent checker accepts the plan.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import replace

from bench.clusters import spread_cluster
from scheduler.engine import decide_plan
from scheduler.ha.failover import after_failure, decide_failover, hosts_in_domain
from scheduler.ha.power import power_advice
from scheduler.ha.watch import reserve_by_wave
from scheduler.model import Cluster, Goal, HaPolicy, Policy
from scheduler.placement.packer import Packer, place_pending
from scheduler.planning.check import check_plan
from scheduler.planning.waves import order_moves
from scheduler.scenario.load import scenario_from_data
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions

Placement = dict[str, str | None]


def consolidated(hosts: int, vms: int, time_limit: float) -> tuple[Cluster, Placement]:
    """The spread-out cluster and the placement its consolidation reaches."""
    cluster = scenario_from_data(spread_cluster(hosts, vms, seed=1)).cluster
    started = time.monotonic()
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), options(time_limit))
    print(f"consolidated {hosts} hosts / {vms} VMs to {outcome.after.active_hosts} active hosts "
          f"in {time.monotonic() - started:.0f} s")  # fmt: skip
    return cluster, outcome.decision.placement


def reserve_through_the_plan(cluster: Cluster, target: Placement) -> None:
    """The consolidation's waves ordered to keep each reserve, against the plain order."""
    plain, _, _ = order_moves(cluster, target)
    plain_waves = [[(m.vm, m.target) for m in wave] for wave in plain]
    for label, ha in (("N+1", HaPolicy(1)), ("one rack", HaPolicy(0, "rack"))):
        guarded = replace(cluster, policy=Policy(cluster.policy.overcommit, ha))
        started = time.monotonic()
        waves, unresolved, breaks = order_moves(guarded, target)
        seconds = time.monotonic() - started
        started = time.monotonic()
        checked = reserve_by_wave(guarded, [[(m.vm, m.target) for m in w] for w in waves])
        check_s = time.monotonic() - started
        baseline = reserve_by_wave(guarded, plain_waves)
        print(f"  {label:<9} reserve-aware order: {len(waves)} waves, {len(unresolved)} "
              f"unresolved, {len(breaks)} waves break the reserve (checker: {len(checked)}), "
              f"ordered in {seconds:.1f} s, checked in {check_s:.1f} s; plain order: "
              f"{len(plain)} waves, {len(baseline)} break it")  # fmt: skip


def options(time_limit: float) -> SearchOptions:
    return SearchOptions(SolverSettings(time_limit_s=time_limit, workers=0, seed=0))


def reserve_cost(cluster: Cluster) -> None:
    for label, ha in (("no reserve (baseline)", HaPolicy()), ("N+1", HaPolicy(1)),
                      ("one rack", HaPolicy(0, "rack"))):  # fmt: skip
        with_policy = replace(cluster, policy=Policy(cluster.policy.overcommit, ha))
        started = time.monotonic()
        advice = power_advice(with_policy, with_policy.current_placement)
        seconds = time.monotonic() - started
        holds = "holds" if advice.reserve_holds else "DOES NOT HOLD"
        off, kept = len(advice.power_off), len(advice.kept_for_reserve)
        print(f"  {label:<22} power off {off:>4} empty hosts, keep {kept:>3} on "
              f"for the reserve ({holds}), {seconds:.1f} s")  # fmt: skip


def first_fit_restarts(cluster: Cluster, failed: tuple[str, ...]) -> int:
    snapshot = after_failure(cluster, failed)
    packer = Packer(
        snapshot, {v.name: (None if v.host in failed else v.host) for v in snapshot.vms}
    )
    victims = [v.name for v in snapshot.vms if v.host in failed]
    return len(victims) - len(place_pending(packer, victims, fit="first"))


def failover(cluster: Cluster, label: str, failed: tuple[str, ...], time_limit: float) -> None:
    started = time.monotonic()
    baseline = first_fit_restarts(cluster, failed)
    baseline_s = time.monotonic() - started
    started = time.monotonic()
    result = decide_failover(cluster, failed, options(time_limit))
    seconds = time.monotonic() - started
    problems = check_plan(result.outcome.cluster, result.outcome.plan)
    restarted, left = len(result.restarts), len(result.not_restarted)
    print(f"  {label}: {restarted + left} VMs on {len(failed)} hosts; vmpack restarts "
          f"{restarted} ({left} without a host) in {seconds:.1f} s; "
          f"first-fit baseline restarts {baseline} in {baseline_s:.2f} s; "
          f"checker: {'accepted' if not problems else problems[:2]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1000x10000", help="HOSTSxVMS")
    parser.add_argument("--time-limit", type=float, default=55.0)
    parser.add_argument("--failover-time-limit", type=float, default=30.0)
    args = parser.parse_args()
    hosts, vms = (int(n) for n in args.size.split("x"))
    spread_out, target = consolidated(hosts, vms, args.time_limit)
    print("HA reserve at every wave of the consolidation plan")
    reserve_through_the_plan(spread_out, target)
    cluster = spread_out.moved_to(target)
    print("HA reserve: empty hosts that may be powered off")
    reserve_cost(cluster)
    load = Counter(v.host for v in cluster.vms)
    busiest = max(load, key=lambda h: (load[h], h or ""))
    racks = Counter(cluster.host_by_name[h].labels["rack"] for h in load.elements() if h)
    rack = max(racks, key=lambda r: (racks[r], r))
    print("failover")
    failover(cluster, f"host {busiest}", (str(busiest),), args.failover_time_limit)
    failover(cluster, f"rack {rack}", hosts_in_domain(cluster, "rack", rack),
             args.failover_time_limit)  # fmt: skip


if __name__ == "__main__":
    main()
