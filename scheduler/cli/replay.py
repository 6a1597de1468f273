"""``vmpack replay``: run a usage trace through consolidation policies and compare them."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from scheduler.output import pictures
from scheduler.replay import report
from scheduler.replay.azure import load_azure
from scheduler.replay.hosts import CLOUDSIM_HOSTS, parse_hosts
from scheduler.replay.policies import POLICY_NAMES, make_policy
from scheduler.replay.simulate import Progress, ReplayResult, ReplaySettings, replay
from scheduler.replay.traces import Trace, TraceError, load_bitbrains, load_planetlab

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|min|h|d)$")
SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
# A generic two-socket host for traces whose VMs outgrow the SPECpower models; its power line
# (idle 150 W, peak 400 W) is an assumption, not a measurement.
GENERIC_HOST = "48x2600MHz/384GiB@150-400W"


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cmd = sub.add_parser("replay", help="replay a usage trace under consolidation policies")
    cmd.add_argument("trace", type=Path, help="trace directory, archive or CSV")
    cmd.add_argument("--format", choices=("planetlab", "bitbrains", "azure"), default="planetlab")
    cmd.add_argument(
        "--hosts",
        default="",
        metavar="COUNT:MODEL[+COUNT:MODEL]",
        help=f"hosts (default for planetlab: {CLOUDSIM_HOSTS}; otherwise "
        f"one {GENERIC_HOST} per 4 VMs)",
    )
    cmd.add_argument(
        "--policies",
        default="never,threshold,vmpack",
        help=f"comma separated, from {', '.join(POLICY_NAMES)}",
    )
    cmd.add_argument("--every", default="1h", help="time between decisions, e.g. 1h, 30m")
    cmd.add_argument("--interval", default="300s", help="the trace's sample interval")
    cmd.add_argument("--hours", type=float, default=0.0, help="replay only the first hours")
    cmd.add_argument("--target-load", type=float, default=0.8, help="CPU share packed up to")
    cmd.add_argument("--overload-at", type=float, default=0.9, help="CPU share called overload")
    cmd.add_argument("--lower", type=float, default=0.3,
                     help="threshold: empty hosts below this CPU share; vmpack-triggered: "
                          "decide when a host is below it in CPU and memory")  # fmt: skip
    cmd.add_argument(
        "--min-hosts-saved",
        type=int,
        default=1,
        help="vmpack: apply a decision only when it frees this many hosts",
    )
    cmd.add_argument("--max-moves", type=int, default=None,
                     help="vmpack: migrations per decision (default: 10 %% of VMs)")  # fmt: skip
    cmd.add_argument("--time-limit", type=float, default=10.0, help="vmpack: seconds per decision")
    cmd.add_argument("--workers", type=int, default=0, help="vmpack: solver threads")
    cmd.add_argument(
        "--vm-share", type=float, default=1.0, help="azure: keep this share of arrivals"
    )
    cmd.add_argument("--check", action="store_true", help="verify every vmpack plan by the checker")
    pictures.add_report_arguments(cmd)
    cmd.add_argument("--json", action="store_true", help="print the figures as JSON")
    cmd.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    interval = _seconds("--interval", args.interval)
    every = _seconds("--every", args.every)
    if every % interval:
        raise TraceError(f"--every: {args.every} is not a whole number of {interval} s steps")
    for option, value in (
        ("--target-load", args.target_load),
        ("--overload-at", args.overload_at),
        ("--lower", args.lower),
        ("--vm-share", args.vm_share),
    ):
        if not 0 < value <= 2:
            raise TraceError(f"{option}: must be a share such as 0.8, got {value}")
    names = [n.strip() for n in args.policies.split(",") if n.strip()]
    for name in names:
        if name not in POLICY_NAMES:
            raise TraceError(
                f"--policies: unknown policy '{name}' (known: {', '.join(POLICY_NAMES)})"
            )
    policies = [
        make_policy(
            n,
            args.time_limit,
            args.workers,
            args.check,
            args.max_moves,
            args.lower,
            args.min_hosts_saved,
        )
        for n in names
    ]
    trace = _load(args, interval)
    if args.hours:
        trace = trace.cut(max(1, int(args.hours * 3600 // interval)))
    hosts = parse_hosts(
        args.hosts
        or (
            CLOUDSIM_HOSTS
            if args.format == "planetlab"
            else f"{trace.vm_count // 4 + 1}:{GENERIC_HOST}"
        )
    )
    settings = ReplaySettings(every // interval, args.target_load, args.overload_at)
    show = not args.json and sys.stderr.isatty()
    results = [replay(trace, hosts, p, settings, _progress() if show else None) for p in policies]
    if args.html:
        text = report.html(results, trace, len(hosts), settings, {"hosts": args.hosts or "default"})
        args.html.write_text(text, encoding="utf-8")
    if args.plots:
        pictures.save_all(report.figures(results), args.plots, args.plot_format)
    if args.json:
        print(
            json.dumps(
                {
                    "trace": trace.name,
                    "vms": trace.vm_count,
                    "hosts": len(hosts),
                    "steps": trace.steps,
                    "interval_s": trace.interval_s,
                    "results": [r.summary() for r in results],
                },
                indent=2,
            )
        )
    else:
        _print(results, trace, len(hosts), args)
    return 0


def _load(args: argparse.Namespace, interval: int) -> Trace:
    if args.format == "planetlab":
        return load_planetlab(args.trace, interval)
    if args.format == "bitbrains":
        return load_bitbrains(args.trace, interval)
    return load_azure(args.trace, interval, args.vm_share)


def _seconds(option: str, text: str) -> int:
    match = DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise TraceError(f"{option}: '{text}' is not a duration such as 300s, 30m or 1h")
    return int(float(match.group(1)) * SECONDS[match.group(2)])


def _progress() -> Progress:
    console = Console(stderr=True)

    def show(policy: str, step: int, steps: int) -> None:
        end = "\n" if step == steps else "\r"
        console.print(f"  {policy}: step {step}/{steps}", end=end, highlight=False)

    return show


def _print(results: list[ReplayResult], trace: Trace, hosts: int, args: argparse.Namespace) -> None:
    console = Console(soft_wrap=True)
    console.print(
        f"[bold]{trace.name}[/]: {trace.vm_count} VMs on {hosts} hosts, "
        f"{trace.steps} steps of {trace.interval_s} s, decisions every {args.every}"
    )
    header, rows = report.header(results), report.rows(results)
    table = Table("", *(str(row[0]) for row in rows))  # a column per policy: fits a terminal
    for i, label in enumerate(header[1:], start=1):
        table.add_row(label, *(str(row[i]) for row in rows))
    console.print(table)
    for target, what in ((args.html, "report"), (args.plots, "plots")):
        if target:
            console.print(f"{what}: {target}")
