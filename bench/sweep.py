"""A 60-case sweep, run on one and on two local worker processes in the same run.

    python -m bench.sweep [--scenario scenarios/bitbrains-200-hosts.yaml] [--time-limit 3]

Every single-rack failure (10 racks) x CPU and memory growth 0-50 % in 10 % steps, each case
answered by the production engine. Printed: wall time with 1 and 2 workers, the speed-up,
the sum of the cases' own times (what a serial loop would cost), and whether both runs gave
identical answers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scheduler.scenario.load import load_scenario
from scheduler.whatif import sweep
from scheduler.whatif.changes import parse_changes

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default=str(ROOT / "scenarios" / "bitbrains-200-hosts.yaml"))
    parser.add_argument("--fail-each", default="rack")
    parser.add_argument("--grow-steps", default="0-50/10")
    parser.add_argument("--time-limit", type=float, default=3.0)
    args = parser.parse_args()
    cluster = load_scenario(args.scenario).cluster
    cases = sweep.cases(
        cluster, parse_changes(), args.fail_each, sweep.growth_steps(args.grow_steps)
    )
    print(f"{Path(args.scenario).name}: {len(cluster.hosts)} hosts, {len(cluster.vms)} VMs, "
          f"{len(cases)} cases, {args.time_limit} work units per case")  # fmt: skip
    runs = {}
    for workers in (1, 2):
        began = time.monotonic()
        results = sweep.run(cluster, cases, args.time_limit, workers)
        wall = time.monotonic() - began
        runs[workers] = (wall, results)
        serial = sum(r["seconds"] for r in results)
        print(f"  {workers} worker(s): {wall:.1f} s wall, cases' own time {serial:.1f} s")
    one, two = runs[1], runs[2]
    same = [{k: v for k, v in r.items() if k != "seconds"} for r in one[1]] == [
        {k: v for k, v in r.items() if k != "seconds"} for r in two[1]
    ]
    needed = [r["hosts_needed"] for r in one[1]]
    holds = sum(1 for r in one[1] if r["ha"]["holds"])
    print(f"speed-up 2 vs 1 worker: {one[0] / two[0]:.2f}x; identical answers: {same}")
    print(f"hosts needed: min {min(needed)}, max {max(needed)}; HA reserve holds in {holds} cases")


if __name__ == "__main__":
    main()
