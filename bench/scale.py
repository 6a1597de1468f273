"""Consolidation at scale, per family of clusters: the whole command against its promise.

    python -m bench.scale --families cloud-identical,azure --sizes 1000x10000,5000x30000 \\
        --time-limit 30,60 [--shared ../shared/data] [--again]

Each case runs ``vmpack plan --json`` as its own process, as a user would, and measures the
whole command: wall time from start to exit (against the time limit and the limit + 10 %
promised) and peak memory. Beside it, in the same run:

- the cheap lower bound on active hosts (volume per resource, ``solver.bounds``), the LP bound
  over VM sizes where hosts are alike and sizes few (``solver/dive/by_type.py``), and two
  lower bounds on moves for the host count reached: the cheap one (the VMs on the hosts left
  out, the hosts kept having room for every VM: with mixed host models, which hosts can
  stay is limited) and the LP over host contents (``solver/moves_lp.py``: the gaps left
  must fit the VMs that move); moves are measured against the larger;
- the keep-in-place baseline (empty the least-loaded hosts first, first fit);
- first-fit decreasing from scratch (which moves nearly every VM);
- the independent checker on the plan written.

``--again`` runs each case a second time with twice the limit, to see whether more time
gives a better answer. Families and sizes pair up in order with the limits: the first size
takes the first limit.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.baselines import keep_in_place_baseline
from bench.families import FAMILIES, add_arguments, cases
from scheduler.engine import plan_from_json
from scheduler.model import Cluster
from scheduler.placement.evaluate import indicators
from scheduler.planning.check import check_plan
from scheduler.scenario.load import scenario_from_data
from scheduler.solver.bounds import active_hosts_lower_bound, moves_lower_bound
from scheduler.solver.budget import Budget
from scheduler.solver.dive.lp_dive import lp_bound_by_size
from scheduler.solver.moves_lp import moves_lp_bound
from scheduler.solver.starts.greedy import first_fit_decreasing

PROMISE = 1.10  # the whole command ends within the limit and a tenth
LP_SECONDS = 30.0  # for each LP bound's pricing


@dataclass(frozen=True)
class Run:
    wall_s: float
    peak_mib: float
    summary: dict[str, object]
    document: dict[str, object]


def run_vmpack(scenario: Path, time_limit: float, seed: int) -> Run:
    out = scenario.with_suffix(".plan.json")
    command = [
        sys.executable, "-m", "scheduler.cli.main", "plan", str(scenario),
        "--time-limit", str(time_limit), "--seed", str(seed), "--out", str(out), "--json",
    ]  # fmt: skip
    began = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.monotonic() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise SystemExit(f"vmpack plan failed ({child.returncode}) on {scenario}")
    document = json.loads(out.read_text())
    return Run(wall, usage.ru_maxrss / 1024, document["summary"], document)


def case(family: str, hosts: int, vms: int, limit: float, seed: int, shared: Path,
         again: bool, workdir: Path) -> None:  # fmt: skip
    data = FAMILIES[family].make(hosts, vms, seed, shared)
    scenario = workdir / f"{family}-{hosts}-{vms}.yaml"
    scenario.write_text(yaml.safe_dump(data, default_flow_style=None, width=1000))
    cluster = scenario_from_data(data).cluster
    bound = active_hosts_lower_bound(cluster)
    lp = lp_bound(cluster)
    began = time.monotonic()
    baseline = indicators(cluster, keep_in_place_baseline(cluster))
    baseline_s = time.monotonic() - began
    ffd = indicators(cluster, first_fit_decreasing(cluster, "first", "max"))
    start = indicators(cluster, cluster.current_placement)
    print(f"\n== {family}: {hosts} hosts, {vms} VMs, {start.active_hosts} active, "
          f"cheap bound {bound}, LP bound {'n/a' if lp is None else lp} ==")  # fmt: skip
    print(f"keep-in-place baseline: {baseline.active_hosts} hosts "
          f"(+{_pct(baseline.active_hosts, bound)}), {baseline.moves} moves, "
          f"{baseline_s:.1f} s")  # fmt: skip
    print(f"first-fit decreasing:   {ffd.active_hosts} hosts (+{_pct(ffd.active_hosts, bound)}), "
          f"{ffd.moves} moves")  # fmt: skip
    limits = [limit, 2 * limit] if again else [limit]
    for each in limits:
        run = run_vmpack(scenario, each, seed)
        s = run.summary
        after, moves = int(str(s["active_hosts_after"])), int(str(s["moves"]))
        plan = plan_from_json(run.document)
        cheap = moves_lower_bound(cluster, after, [vm for vm, h in plan.placement.items() if h])
        lp_moves = moves_lp_bound(cluster, plan.placement, Budget(LP_SECONDS))
        at_least = max(cheap, lp_moves or 0)
        problems = check_plan(cluster, plan)
        kept = "kept" if run.wall_s <= PROMISE * each else "BROKEN"
        print(
            f"vmpack --time-limit {each:g}: {after} hosts (+{_pct(after, bound)} over the bound,"
            f" {after / baseline.active_hosts:.3f}x baseline), {moves} moves"
            f" ({moves / max(1, at_least):.3f}x the move bound {at_least}: cheap {cheap},"
            f" LP {'n/a' if lp_moves is None else lp_moves}), status {s['status']}"
            f" ({s['method']}); wall {run.wall_s:.1f} s = {run.wall_s / each:.2f}x the limit"
            f" (promise {kept}), peak {run.peak_mib:.0f} MiB;"
            f" checker {'accepted' if not problems else f'{len(problems)} violations'}"
        )


def lp_bound(cluster: Cluster, seconds: float = LP_SECONDS) -> int | None:
    """The LP bound over VM sizes (``solver/dive/by_type.py``): None when host models
    differ, the sizes are too many, or pricing did not end within ``seconds``."""
    usable = [h for h in cluster.hosts if h.accepts_vms]
    if not usable or any(h.capacity != usable[0].capacity for h in usable):
        return None
    return lp_bound_by_size(cluster, Budget(seconds))


def _pct(value: int, bound: int) -> str:
    return f"{100 * (value - bound) / max(1, bound):.1f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, "1000x10000,5000x30000", "30,60")
    parser.add_argument("--again", action="store_true", help="also run at twice the limit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        for family, hosts, vms, limit in cases(args):
            case(family, hosts, vms, limit, args.seed, args.shared, args.again, Path(workdir))


if __name__ == "__main__":
    main()
