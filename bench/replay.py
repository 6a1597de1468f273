"""One PlanetLab day replayed on the CloudSim setup, every policy in the same run.

    python -m bench.replay --day 20110303 --time-limit 10 [--html replay.html]

800 hosts (HP ML110 G4 and G5 alternating, SPECpower power curves), one VM per trace file
with the CloudSim VM types, 288 steps of 300 s, decisions hourly. Printed per policy:
active host-hours, energy, migrations, overload and SLA-violation time, each beside the
no-consolidation baseline (``never``) and the simple threshold heuristic measured in the
same run, with ratios to both. Every vmpack plan passes the solver-free checker.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scheduler.replay import report
from scheduler.replay.hosts import CLOUDSIM_HOSTS, parse_hosts
from scheduler.replay.policies import POLICY_NAMES, make_policy
from scheduler.replay.simulate import ReplaySettings, replay
from scheduler.replay.traces import load_planetlab

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "planetlab"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default="20110303")
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--policies", default=",".join(POLICY_NAMES))
    parser.add_argument("--html", type=Path)
    args = parser.parse_args()
    trace = load_planetlab(DATA / f"planetlab_{args.day}.tar.xz")
    trace = trace.cut(int(args.hours * 3600 // trace.interval_s))
    hosts = parse_hosts(CLOUDSIM_HOSTS)
    settings = ReplaySettings()
    print(f"PlanetLab {args.day}: {trace.vm_count} VMs, {len(hosts)} hosts, {trace.steps} steps")
    results = []
    for name in args.policies.split(","):
        began = time.monotonic()
        policy = make_policy(name, args.time_limit, check=True)
        results.append(replay(trace, hosts, policy, settings))
        print(f"  {name}: {time.monotonic() - began:.1f} s")
    summaries = {r.policy: r.summary() for r in results}
    keys = (
        "active_host_hours",
        "energy_kwh",
        "migrations",
        "memory_moved_gib",
        "overload_host_hours",
        "overload_incidents",
        "sla_violation_host_hours",
        "unserved_cpu_share",
        "decision_seconds",
    )
    print("policy".ljust(18) + "".join(k[:14].rjust(16) for k in keys))
    for name, s in summaries.items():
        print(name.ljust(18) + "".join(str(s[k]).rjust(16) for k in keys))
    for base in ("never", "threshold"):
        if base not in summaries:
            continue
        b = summaries[base]
        for name, s in summaries.items():
            if name == base:
                continue
            ratios = ", ".join(
                f"{k} {s[k] / b[k]:.3f}" for k in ("active_host_hours", "energy_kwh") if b[k]
            )
            print(
                f"{name} / {base}: {ratios}; migrations {s['migrations']} vs {b['migrations']}; "
                f"overload host-hours {s['overload_host_hours']} vs {b['overload_host_hours']}"
            )
    if args.html:
        args.html.write_text(
            report.html(results, trace, len(hosts), settings, {}), encoding="utf-8"
        )


if __name__ == "__main__":
    main()
