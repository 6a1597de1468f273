"""What each stage of the pipeline contributes: every family decided with all stages, and
again with each stage left out (its time then goes to the stages after it).

    python -m bench.stages --sizes 200x2000,1000x10000 --time-limit 10,20

A stage pays for its time when leaving it out gives more hosts or more moves. Everything
runs in this process on the same wall budget; the figures are active hosts and moves of
the target (consolidation), and how much of the budget was spent.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.families import FAMILIES, add_arguments, cases
from scheduler.engine import decide_plan
from scheduler.model import Goal
from scheduler.scenario.load import scenario_from_data
from scheduler.solver.bounds import active_hosts_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import STAGES, SearchOptions


def compare(family: str, hosts: int, vms: int, limit: float, seed: int, shared: Path) -> None:
    cluster = scenario_from_data(FAMILIES[family].make(hosts, vms, seed, shared)).cluster
    bound = active_hosts_lower_bound(cluster)
    print(f"\n== {family}: {hosts} hosts, {vms} VMs, cheap bound {bound}, {limit:g} s ==")
    for left_out in ["", *sorted(STAGES)]:
        options = SearchOptions(SolverSettings(limit, seed=seed), stages=STAGES - {left_out})
        outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), options, Budget(limit))
        s = outcome.summary()
        label = f"without {left_out}" if left_out else "all stages"
        print(f"{label:18} {s['active_hosts_after']:6} hosts {s['moves']:7} moves  "
              f"{s['method']:5} {s['solve_seconds']:6.1f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "200x2000,1000x10000", "10,20")
    args = parser.parse_args()
    for family, hosts, vms, limit in cases(args):
        compare(family, hosts, vms, limit, args.seed, args.shared)


if __name__ == "__main__":
    main()
