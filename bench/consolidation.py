"""Consolidation of generated clusters, against the bounds and a keep-in-place baseline.

    python -m bench.consolidation --sizes 200x2000,1000x10000 --time-limit 55

For each size it prints, all measured in the same run:
- the keep-in-place baseline (empty the least-loaded hosts first, first-fit their VMs);
- vmpack: active hosts against the proven lower bound, moves against the move lower bound for
  that host count, memory moved, seconds, and whether the independent checker accepts the plan;
- vmpack held to the baseline's host count: its moves against the baseline's moves.
"""

from __future__ import annotations

import argparse
import time

from bench.baselines import keep_in_place_baseline
from bench.clusters import spread_cluster
from scheduler.engine import decide_plan
from scheduler.model import Goal
from scheduler.placement.evaluate import indicators
from scheduler.planning.check import check_plan
from scheduler.scenario.load import scenario_from_data
from scheduler.solver.bounds import moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.starts.keep_set import keep_set_start


def run(hosts: int, vms: int, time_limit: float, seed: int) -> None:
    cluster = scenario_from_data(spread_cluster(hosts, vms, seed=seed)).cluster
    print(f"\n== {hosts} hosts, {vms} VMs (seed {seed}) ==")

    started = time.monotonic()
    baseline = indicators(cluster, keep_in_place_baseline(cluster))
    base_s = time.monotonic() - started
    print(
        f"keep-in-place baseline: {baseline.active_hosts} hosts, {baseline.moves} moves, "
        f"{baseline.memory_moved_mib / 1024:.0f} GiB moved, {base_s:.1f} s"
    )

    options = SearchOptions(SolverSettings(time_limit_s=time_limit, seed=seed))
    started = time.monotonic()
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), options)
    took = time.monotonic() - started
    s = outcome.summary()
    problems = check_plan(outcome.cluster, outcome.plan)
    gap = 100 * (s["active_hosts_after"] - s["lower_bound"]) / s["lower_bound"]
    over = 100 * (s["moves"] - s["moves_lower_bound"]) / max(1, s["moves_lower_bound"])
    print(
        f"vmpack: {s['active_hosts_after']} hosts "
        f"(lower bound {s['lower_bound']}, gap {gap:.1f} %), "
        f"{s['moves']} moves (lower bound {s['moves_lower_bound']}, +{over:.1f} %), "
        f"{s['memory_moved_mib'] / 1024:.0f} GiB moved, {s['steps']} waves, {took:.1f} s, "
        f"checker: {'accepted' if not problems else f'{len(problems)} violations'}"
    )
    print(
        f"ratios vmpack/baseline: hosts {s['active_hosts_after'] / baseline.active_hosts:.3f}, "
        f"moves {s['moves'] / max(1, baseline.moves):.3f}"
    )

    same = keep_set_start(
        cluster, cluster.current_placement, Budget(10.0), max_hosts=baseline.active_hosts
    )
    if same is not None:
        at_same = indicators(cluster, same)
        bound = moves_lower_bound(cluster, at_same.active_hosts)
        print(
            f"vmpack at the baseline's host budget: {at_same.active_hosts} hosts, "
            f"{at_same.moves} moves (baseline {baseline.moves}, lower bound {bound}), "
            f"{at_same.memory_moved_mib / 1024:.0f} GiB moved "
            f"(baseline {baseline.memory_moved_mib / 1024:.0f} GiB)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200x2000,1000x10000")
    parser.add_argument("--time-limit", type=float, default=55.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for size in args.sizes.split(","):
        hosts, vms = (int(x) for x in size.split("x"))
        run(hosts, vms, args.time_limit, args.seed)


if __name__ == "__main__":
    main()
