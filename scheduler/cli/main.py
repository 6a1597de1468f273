"""``vmpack``: plan, check and explain placements from scenario files.

Exit status: 0 done; 1 the goal was not fully reached (VMs left without a host, unresolved
moves) or a plan failed its check; 2 bad input (one line on stderr naming file, line, field).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from scheduler.cli.live import LiveInputError, add_commands
from scheduler.cli.ops import OpsError
from scheduler.cli.ops import add_commands as add_ops_commands
from scheduler.cli.policy import add_command as add_policy_command
from scheduler.cli.replay import add_command as add_replay_command
from scheduler.cli.rules import add_command as add_rules_command
from scheduler.cli.sweep import add_command as add_sweep_command
from scheduler.cli.whatif import add_command as add_whatif_command
from scheduler.engine import Outcome, decide_plan, plan_from_json, plan_to_json
from scheduler.ha.failover import after_failure, decide_failover, hosts_in_domain
from scheduler.ha.reserve import check_ha
from scheduler.ha.watch import reserve_by_wave
from scheduler.model import Goal, HaPolicy, HostState
from scheduler.output.terminal import (
    ha_report_to_json,
    print_ha_report,
    print_outcome,
    progress_display,
)
from scheduler.placement.explain import why_not_placed
from scheduler.planning.check import check_plan
from scheduler.replay.hosts import HostSpecError
from scheduler.replay.traces import TraceError
from scheduler.scenario.load import Scenario, ScenarioError, load_scenario, parse_scenario
from scheduler.solver.budget import Budget
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import for_goal
from scheduler.whatif.changes import WhatIfError

DEFAULT_SCENARIO = "default.yaml"


class InputError(Exception):
    """Bad input found outside the scenario file (arguments, plan files)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (
        ScenarioError,
        InputError,
        LiveInputError,
        WhatIfError,
        TraceError,
        HostSpecError,
    ) as exc:
        print(f"vmpack: error: {exc}", file=sys.stderr)
        return 2
    except OpsError as exc:
        print(f"vmpack: error: {exc}", file=sys.stderr)
        return exc.status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vmpack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    plan = sub.add_parser("plan", help="decide a target placement and the migrations to reach it")
    plan.add_argument("scenario", nargs="?", help="scenario YAML (default: a bundled example)")
    plan.add_argument(
        "--goal", choices=[g.value for g in Goal], help="default: the scenario's, else consolidate"
    )
    plan.add_argument("--hosts", default="", help="hosts to empty, comma separated (goal evacuate)")
    _solver_arguments(plan)
    plan.add_argument("--out", type=Path, help="write the plan as JSON to this file")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    plan.set_defaults(run=_run_plan)

    check = sub.add_parser("check", help="replay a plan wave by wave and report every violation")
    check.add_argument("scenario")
    check.add_argument("plan", type=Path)
    check.set_defaults(run=_run_check)

    explain = sub.add_parser("explain", help="say why VMs cannot be placed")
    explain.add_argument("scenario")
    explain.add_argument("--goal", choices=[g.value for g in Goal])
    explain.add_argument("--hosts", default="", help="hosts to empty (goal evacuate)")
    explain.add_argument("--vm", help="explain this VM even if it has a host")
    _solver_arguments(explain)
    explain.set_defaults(run=_run_explain)
    fail = sub.add_parser("failover", help="restart the VMs of failed hosts on the survivors")
    fail.add_argument("scenario", nargs="?", help="scenario YAML (default: a bundled example)")
    fail.add_argument("--hosts", default="", help="failed hosts, comma separated")
    fail.add_argument(
        "--domain", default="", metavar="LABEL=VALUE", help="a failed domain (rack=r2)"
    )
    _solver_arguments(fail)
    fail.add_argument("--out", type=Path, help="write the plan as JSON to this file")
    fail.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")
    fail.set_defaults(run=_run_failover)

    ha = sub.add_parser("ha-check", help="say which VMs each host or domain failure strands")
    ha.add_argument("scenario", nargs="?", help="scenario YAML (default: a bundled example)")
    ha.add_argument(
        "--failures",
        type=int,
        help="hosts failing together (default: the policy's, else 1)",
    )
    ha.add_argument("--domain", help="failure-domain label, e.g. rack (default: the policy's)")
    ha.add_argument("--json", action="store_true", help="print the report as JSON")
    ha.set_defaults(run=_run_ha_check)
    add_whatif_command(sub, _load, _options)
    add_replay_command(sub)
    add_sweep_command(sub, _load)
    add_commands(sub)
    add_ops_commands(sub)
    add_policy_command(sub)
    add_rules_command(sub)
    return parser


def _solver_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--time-limit", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--workers", type=int, default=0, help="solver threads (default: cores)")
    parser.add_argument("--seed", type=int, default=0)


def _load(path: str | None) -> tuple[Scenario, str]:
    if path is None:
        text = (
            resources.files("scheduler.scenario")
            .joinpath(DEFAULT_SCENARIO)
            .read_text(encoding="utf-8")
        )
        return parse_scenario(text, f"<bundled {DEFAULT_SCENARIO}>"), DEFAULT_SCENARIO
    return load_scenario(path), path


def _goal_and_hosts(args: argparse.Namespace, scenario: Scenario) -> tuple[Goal, tuple[str, ...]]:
    goal = Goal(args.goal) if args.goal else (scenario.goal or Goal.CONSOLIDATE)
    hosts = tuple(h for h in args.hosts.split(",") if h) or scenario.evacuate_hosts
    known = scenario.cluster.host_by_name
    for host in hosts:
        if host not in known:
            raise InputError(f"--hosts: unknown host '{host}'")
    if goal is Goal.EVACUATE and not hosts:
        raise InputError("--hosts: the evacuate goal needs the hosts to empty")
    if hosts and goal is not Goal.EVACUATE:
        raise InputError(f"--hosts: only the evacuate goal takes hosts, not {goal.value}")
    return goal, hosts


def _options(args: argparse.Namespace, show_progress: bool) -> SearchOptions:
    if args.time_limit <= 0:
        raise InputError(f"--time-limit: must be positive, got {args.time_limit}")
    settings = SolverSettings(args.time_limit, args.workers, args.seed)
    return SearchOptions(settings, progress=progress_display() if show_progress else None)


def _budget(args: argparse.Namespace) -> Budget:
    """The time limit is the whole command's, from the moment the process started."""
    return Budget.since_process_start(args.time_limit)


def _run_plan(args: argparse.Namespace) -> int:
    scenario, _ = _load(args.scenario)
    goal, hosts = _goal_and_hosts(args, scenario)
    quiet = args.json or not sys.stderr.isatty()
    options = _options(args, show_progress=not quiet)
    outcome = decide_plan(scenario.cluster, goal, hosts, options, _budget(args))
    if options.progress is not None:
        options.progress("", -1.0)  # closes the display
    why = dict(zip(outcome.left_behind, _explanations(outcome), strict=True))
    document = plan_to_json(outcome) | {"evacuate": list(hosts), "not_placed": why}
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(document, indent=2))
        _say_not_placed(why)
    else:
        print_outcome(outcome, list(why.values()), args.out)
    reached = not (outcome.left_behind or outcome.plan.unresolved or outcome.conflicting_rules)
    return 0 if reached else 1


def _say_not_placed(why: dict[str, str]) -> None:
    """With ``--json`` on stdout, each VM left without a host is still one line on stderr."""
    for vm, reason in why.items():
        print(f"vmpack: {vm}: {reason}", file=sys.stderr)


def _explanations(outcome: Outcome) -> list[str]:
    return [
        outcome.refused_for_ha.get(vm)
        or why_not_placed(outcome.cluster, outcome.decision.placement, vm)
        for vm in outcome.left_behind
    ]


def _run_check(args: argparse.Namespace) -> int:
    scenario, _ = _load(args.scenario)
    data = _read_plan(args.plan)
    try:
        plan = plan_from_json(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{args.plan}: migrations: malformed entry ({exc})") from None
    hosts = tuple(data.get("evacuate", ()))
    cluster = for_goal(scenario.cluster, plan.goal, hosts)
    if data.get("failed_hosts"):
        cluster = after_failure(cluster, data["failed_hosts"])
    problems = check_plan(cluster, plan)
    problems += reserve_by_wave(cluster, [[(m.vm, m.target) for m in w] for w in plan.waves])
    for problem in problems:
        print(problem)
    verdict = "FAIL" if problems else "OK"
    print(
        f"{verdict}: {len(plan.waves)} waves, {len(plan.moves)} moves, {len(problems)} violations"
    )
    return 1 if problems else 0


def _read_plan(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}:1: a plan is a JSON object")
    return data


def _run_explain(args: argparse.Namespace) -> int:
    scenario, _ = _load(args.scenario)
    goal, hosts = _goal_and_hosts(args, scenario)
    options = _options(args, show_progress=False)
    outcome = decide_plan(scenario.cluster, goal, hosts, options, _budget(args))
    if outcome.conflicting_rules:
        print(
            "no placement satisfies these hard rules together: "
            + "; ".join(outcome.conflicting_rules)
        )
        return 1
    wanted = list(outcome.left_behind)
    if args.vm:
        if args.vm not in scenario.cluster.vm_by_name:
            raise InputError(f"--vm: unknown VM '{args.vm}'")
        wanted = [args.vm]
    if not wanted:
        print(f"{goal.value}: every VM has a host ({outcome.decision.status.value})")
        return 0
    for vm in wanted:
        print(why_not_placed(outcome.cluster, outcome.decision.placement, vm))
    return 1 if outcome.left_behind else 0


def _run_failover(args: argparse.Namespace) -> int:
    scenario, _ = _load(args.scenario)
    cluster = scenario.cluster
    failed = [h for h in args.hosts.split(",") if h]
    for host in failed:
        if host not in cluster.host_by_name:
            raise InputError(f"--hosts: unknown host '{host}'")
        if cluster.host_by_name[host].state is HostState.DOWN:
            raise InputError(f"--hosts: {host} is already down")
    if args.domain:
        label, sep, value = args.domain.partition("=")
        members = hosts_in_domain(cluster, label, value) if sep else ()
        if not members:
            raise InputError(f"--domain: no host has the label {args.domain}")
        failed += [h for h in members if h not in failed]
    if not failed:
        raise InputError("--hosts: name the failed hosts (or --domain LABEL=VALUE)")
    result = decide_failover(cluster, failed, _options(args, show_progress=False))
    document = plan_to_json(result.outcome) | {
        "failed_hosts": list(result.failed_hosts), "not_restarted": result.not_restarted,
    }  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    if args.json:
        print(json.dumps(document, indent=2))
        _say_not_placed(result.not_restarted)
    else:
        print_outcome(result.outcome, list(result.not_restarted.values()), args.out)
        print(f"failed: {', '.join(result.failed_hosts)}; restarted {len(result.restarts)} VMs, "
              f"{len(result.not_restarted)} without a host")  # fmt: skip
    return 1 if result.not_restarted else 0


def _run_ha_check(args: argparse.Namespace) -> int:
    scenario, _ = _load(args.scenario)
    cluster = scenario.cluster
    policy = cluster.policy.ha
    failures = policy.host_failures_to_tolerate if args.failures is None else args.failures
    domain = policy.failure_domain if args.domain is None else args.domain
    if not policy.required and args.failures is None and args.domain is None:
        failures = 1  # no reserve configured: answer the usual question, N+1
    alive = sum(1 for h in cluster.hosts if h.state is not HostState.DOWN)
    if not 0 <= failures < alive:
        raise InputError(f"--failures: must be between 0 and {alive - 1}, got {failures}")
    if domain is not None and not any(domain in h.labels for h in cluster.hosts):
        raise InputError(f"--domain: no host has the label '{domain}'")
    report = check_ha(cluster, HaPolicy(failures, domain))
    if args.json:
        print(json.dumps(ha_report_to_json(report), indent=2))
    else:
        print_ha_report(report)
    return 0 if report.satisfied else 1


if __name__ == "__main__":
    raise SystemExit(main())
