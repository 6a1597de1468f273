"""``vmpack whatif``: ask a capacity question about a scenario; the production engine answers."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from scheduler.output import pictures
from scheduler.output.capacity import answer_figures, answer_html
from scheduler.scenario.load import Scenario
from scheduler.solver.options import SearchOptions
from scheduler.units import format_mib
from scheduler.whatif.capacity import Answer, answer, answer_to_json
from scheduler.whatif.changes import Changes, apply_changes, parse_changes

Loader = Callable[[str | None], tuple[Scenario, str]]


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    load: Loader,
    options: Callable[[argparse.Namespace, bool], SearchOptions],
) -> None:
    whatif = sub.add_parser("whatif", help="answer a capacity question: what if ...?")
    whatif.add_argument("scenario", nargs="?", help="scenario YAML (default: a bundled example)")
    whatif.add_argument("--add", action="append", default=[], metavar="COUNTxVCPUvcpu/MEM[/DISK]",
                        help="new VMs, e.g. 300x4vcpu/16GiB/100GiB (repeatable)")  # fmt: skip
    whatif.add_argument("--remove-hosts", default="", metavar="PATTERNS",
                        help="retire hosts, e.g. 'kvm-0[1-9]' (comma separated)")  # fmt: skip
    whatif.add_argument("--fail", default="", metavar="HOSTS|LABEL=VALUE",
                        help="hosts down, e.g. rack=r3 or kvm-07 (comma separated)")  # fmt: skip
    whatif.add_argument("--grow", default="", metavar="cpu=20%%,memory=10%%")
    whatif.add_argument("--overcommit", default="", metavar="cpu=3")
    whatif.add_argument("--host-model", default="", metavar="128cpu/1TiB/8TiB",
                        help="every host replaced by this model")  # fmt: skip
    whatif.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS")
    whatif.add_argument("--workers", type=int, default=0)
    whatif.add_argument("--seed", type=int, default=0)
    whatif.add_argument("--json", action="store_true", help="print the answer as JSON")
    pictures.add_report_arguments(whatif)

    def run(args: argparse.Namespace) -> int:
        scenario, _ = load(args.scenario)
        changes = parse_changes(args.overcommit, args.host_model, args.remove_hosts, args.fail,
                                args.grow, args.add)  # fmt: skip
        changed = apply_changes(scenario.cluster, changes)
        result = answer(changed, options(args, not args.json and sys.stderr.isatty()))
        if args.json:
            print(json.dumps(answer_to_json(result), indent=2))
        else:
            print_answer(result, changes)
        write_reports(args, result, _describe(changes))
        return 0 if not result.outcome.left_behind else 1

    whatif.set_defaults(run=run)


def write_reports(args: argparse.Namespace, result: Answer, question: str) -> None:
    figures = answer_figures(result)
    if args.html:
        svgs = {caption: pictures.svg(make()) for caption, make in figures.values()}
        args.html.write_text(answer_html(result, question, svgs), encoding="utf-8")
    if args.plots:
        pictures.save_all(figures, args.plots, args.plot_format)


def print_answer(result: Answer, changes: Changes) -> None:
    console = Console(soft_wrap=True)
    s = result.outcome.summary()
    console.print(f"what if: {_describe(changes) or 'nothing changes'}")
    console.print(
        f"hosts needed: [bold]{result.hosts_needed}[/] (proven lower bound {s['lower_bound']}); "
        f"{len(result.hosts_on)} stay on"
    )
    table = Table("resource", "capacity", "allocated", "free", "stranded")
    for h in result.headroom:
        show = format_mib if h.resource != "vcpus" else str
        share = f" ({100 * h.free / h.capacity:.0f} %)" if h.capacity else ""
        table.add_row(h.resource, show(h.capacity), show(h.allocated), show(h.free) + share,
                      show(h.stranded))  # fmt: skip
    console.print(table)
    ha = result.ha_policy
    scope = f"N+{ha.host_failures_to_tolerate}" if ha.host_failures_to_tolerate else ""
    scope += f" one {ha.failure_domain}" if ha.failure_domain else ""
    verdict = "[green]holds[/]" if result.ha_holds else f"[red]does not hold[/]: {result.ha_worst}"
    console.print(f"HA reserve ({scope.strip()}): {verdict}")
    waiting = s["unplaced_or_stranded"]
    if waiting:
        more = f" (+{len(waiting) - 5} more)" if len(waiting) > 5 else ""
        console.print(f"[red]VMs without a host:[/] {len(waiting)}: {', '.join(waiting[:5])}{more}")
    console.print(
        f"from today: {s['moves']} migrations, {s['placements']} placements or restarts, "
        f"{s['steps']} waves, {format_mib(s['memory_moved_mib'])} moved"
    )


def _describe(changes: Changes) -> str:
    parts = []
    if changes.add:
        parts.append(
            " + ".join(f"{c} VMs of {v} vCPU/{format_mib(m)}" for c, v, m, _ in changes.add)
        )
    if changes.remove_hosts:
        parts.append(f"hosts {', '.join(changes.remove_hosts)} retired")
    if changes.fail:
        parts.append(f"{', '.join(changes.fail)} failed")
    if changes.grow:
        parts.append(
            "demand " + ", ".join(f"{r} +{100 * (f - 1):.0f} %" for r, f in changes.grow.items())
        )
    if changes.overcommit:
        ratios = [f"{r} {v:g}" for r, v in changes.overcommit.items()]
        parts.append("overcommit " + ", ".join(ratios))
    if changes.host_model:
        cpus, memory, disk = changes.host_model
        parts.append(f"every host a {cpus} CPU / {format_mib(memory)} / {format_mib(disk)} model")
    return "; ".join(parts)
