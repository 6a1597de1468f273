"""``vmpack sweep``: many what-if cases about one scenario, on a process pool or Ray."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from scheduler.output import pictures
from scheduler.output.capacity import SWEEP_COLUMNS, sweep_figure, sweep_html, sweep_rows
from scheduler.scenario.load import Scenario
from scheduler.whatif import sweep
from scheduler.whatif.changes import WhatIfError, parse_changes

Loader = Callable[[str | None], tuple[Scenario, str]]


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], load: Loader) -> None:
    cmd = sub.add_parser("sweep", help="answer many what-ifs in parallel (process pool or Ray)")
    cmd.add_argument("scenario", nargs="?", help="scenario YAML (default: a bundled example)")
    cmd.add_argument(
        "--fail-each",
        default="",
        metavar="LABEL",
        help="one case per value of this host label failing, e.g. rack",
    )
    cmd.add_argument(
        "--grow-steps",
        default="0",
        metavar="LOW-HIGH/STEP",
        help="CPU and memory growth per case in %%, e.g. 0-50/10 or 0,25,50",
    )
    cmd.add_argument("--add", action="append", default=[], metavar="COUNTxVCPUvcpu/MEM[/DISK]")
    cmd.add_argument("--remove-hosts", default="", metavar="PATTERNS")
    cmd.add_argument("--overcommit", default="", metavar="cpu=3")
    cmd.add_argument("--host-model", default="", metavar="128cpu/1TiB/8TiB")
    cmd.add_argument("--workers", type=int, default=0, help="local processes (default: cores)")
    cmd.add_argument("--ray", default="", metavar="ADDRESS", help="run on this Ray cluster")
    cmd.add_argument(
        "--time-limit",
        type=float,
        default=10.0,
        help="solver work per case (CP-SAT deterministic units, about seconds)",
    )
    cmd.add_argument("--seed", type=int, default=0)
    cmd.add_argument("--json", action="store_true", help="print every answer as JSON")
    pictures.add_report_arguments(cmd)

    def run(args: argparse.Namespace) -> int:
        scenario, name = load(args.scenario)
        if args.time_limit <= 0:
            raise WhatIfError(f"--time-limit: must be positive, got {args.time_limit}")
        if args.workers < 0:
            raise WhatIfError(f"--workers: must be 0 (cores) or more, got {args.workers}")
        base = parse_changes(args.overcommit, args.host_model, args.remove_hosts, "", "", args.add)
        steps = sweep.growth_steps(args.grow_steps)
        cases = sweep.cases(scenario.cluster, base, args.fail_each, steps)
        workers = args.workers or os.cpu_count() or 1
        show = not args.json and sys.stderr.isatty()
        began = time.monotonic()
        results = sweep.run(
            scenario.cluster,
            cases,
            args.time_limit,
            workers,
            args.ray or None,
            _progress() if show else None,
            args.seed,
        )
        wall = time.monotonic() - began
        where = f"Ray at {args.ray}" if args.ray else f"{workers} local worker(s)"
        if args.json:
            print(
                json.dumps(
                    {
                        "scenario": name,
                        "cases": len(cases),
                        "where": where,
                        "wall_seconds": round(wall, 2),
                        "results": results,
                    },
                    indent=2,
                )
            )
        else:
            _print(results, name, where, wall)
        if args.html:
            notes = [f"{len(cases)} cases of {name} on {where} in {wall:.1f} s"]
            args.html.write_text(sweep_html(results, f"Sweep of {name}", notes), encoding="utf-8")
        if args.plots:
            figures = {"sweep": ("Hosts needed per case", lambda: sweep_figure(results))}
            pictures.save_all(figures, args.plots, args.plot_format)
        return 0

    cmd.set_defaults(run=run)


def _progress() -> sweep.Progress:
    console = Console(stderr=True)

    def show(done: int, total: int) -> None:
        console.print(f"  cases {done}/{total}", end="\n" if done == total else "\r")

    return show


def _print(results: list[dict[str, object]], name: str, where: str, wall: float) -> None:
    console = Console(soft_wrap=True)
    console.print(f"[bold]{name}[/]: {len(results)} cases on {where} in {wall:.1f} s")
    table = Table(*(c.replace("_", " ") for c in SWEEP_COLUMNS))
    for row in sweep_rows(results):
        table.add_row(*(str(c) for c in row))
    console.print(table)
