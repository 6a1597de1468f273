"""What the terminal shows: a progress display while solving and a readable summary."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from scheduler.engine import Outcome
from scheduler.ha.reserve import HaReport
from scheduler.units import format_mib

MAX_WAVES_SHOWN = 5


def progress_display() -> Callable[[str, float], None]:
    """A callback for the search: (text, fraction of time used); a negative fraction ends it."""
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    task = progress.add_task("starting", total=1.0)
    progress.start()

    def update(text: str, fraction: float) -> None:
        if fraction < 0:
            progress.stop()
            return
        progress.update(task, description=text[:70], completed=fraction)

    return update


def print_outcome(outcome: Outcome, explanations: list[str], written_to: Path | None) -> None:
    console = Console()
    s = outcome.summary()
    title = f"{outcome.plan.scenario}: {outcome.plan.goal.value} ({s['status']}, {s['method']})"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_row("active hosts", str(s["active_hosts_before"]), str(s["active_hosts_after"]))
    for resource in outcome.cluster.resources:
        before = outcome.before.utilisation.get(resource)
        after = outcome.after.utilisation.get(resource)
        if before or after:
            table.add_row(f"{resource} used (mean / max)", _util(before), _util(after))
    console.print(table)
    gap = f"{100 * s['gap']:.1f} %"
    console.print(
        f"lower bound on hosts: [bold]{s['lower_bound']}[/] (gap {gap})   "
        f"moves: [bold]{s['moves']}[/] (at least {s['moves_lower_bound']} for this host count"
        f"{', ' + str(s['parking_moves']) + ' parking' if s['parking_moves'] else ''})   "
        f"memory moved: {format_mib(s['memory_moved_mib'])}   "
        f"placements: {s['placements']}   waves: {s['steps']}   time: {s['solve_seconds']:.1f} s"
    )
    console.print(_power_line(outcome), highlight=False)
    for wave_number, wave in enumerate(outcome.plan.waves[:MAX_WAVES_SHOWN], start=1):
        shown = ", ".join(f"{m.vm} {m.source or '-'}→{m.target}" for m in wave[:6])
        more = f" (+{len(wave) - 6})" if len(wave) > 6 else ""
        console.print(f"  wave {wave_number}: {shown}{more}", highlight=False)
    if len(outcome.plan.waves) > MAX_WAVES_SHOWN:
        console.print(f"  ... {len(outcome.plan.waves) - MAX_WAVES_SHOWN} more waves")
    for text in s["soft_rules_broken"]:
        console.print(f"[yellow]soft rule broken:[/] {text}", highlight=False)
    for text in explanations:
        console.print(f"[red]not placed:[/] {text}", highlight=False)
    if s["conflicting_rules"]:
        rules = "; ".join(s["conflicting_rules"])
        console.print(f"[red]no placement satisfies these hard rules together:[/] {rules}")
    if s["unresolved_moves"]:
        console.print(f"[red]no safe order found for:[/] {', '.join(s['unresolved_moves'])}")
    if written_to:
        console.print(f"plan written to {written_to}")


def _power_line(outcome: Outcome) -> str:
    power = outcome.power
    line = f"empty hosts that can be powered off: {len(power.power_off)}"
    if outcome.cluster.policy.ha.required:
        if not power.reserve_holds:
            return line + "   [red]HA reserve does not hold[/] even with every empty host on"
        line += f" ({len(power.kept_for_reserve)} more stay on for the HA reserve, which holds)"
    cost = outcome.reserve_cost
    if cost is not None:
        chosen = "a target chosen with the reserve" if cost.reserve_aware else "the tightest target"
        line += (
            f"\nHA reserve: {cost.powered_hosts} hosts on ({chosen}); without a reserve "
            f"{cost.reserve_free_hosts} active hosts: the reserve costs {cost.hosts} hosts"
        )
    return line


def _util(values: tuple[float, float, float] | None) -> str:
    if not values:
        return "-"
    _, mean, high = values
    return f"{100 * mean:.0f} % / {100 * high:.0f} %"


MAX_FAILURES_SHOWN = 20


def ha_report_to_json(report: HaReport) -> dict[str, Any]:
    return {
        "host_failures_to_tolerate": report.policy.host_failures_to_tolerate,
        "failure_domain": report.policy.failure_domain,
        "satisfied": report.satisfied,
        "exhaustive": report.exhaustive,
        "failures": [
            {"name": f.name, "hosts": list(f.hosts), "vms": len(f.vms),
             "stranded": list(f.stranded), "extra_hosts": f.extra_hosts,
             "shortfall": dict(f.shortfall)}
            for f in report.failures
        ],
    }  # fmt: skip


def _shortfall(shortfall: Mapping[str, int]) -> str:
    if not shortfall:
        return "the survivors have the room in total, but no host has enough of it"
    parts = [f"{r} {format_mib(v) if r.endswith('_mib') else v}" for r, v in shortfall.items()]
    return "short of " + ", ".join(parts)


def print_ha_report(report: HaReport) -> None:
    """The failures that strand VMs first, worst first; then the verdict."""
    console = Console(soft_wrap=True)  # one line per failure, whatever the terminal width
    policy = report.policy
    scope = []
    if policy.host_failures_to_tolerate:
        scope.append(f"{policy.host_failures_to_tolerate} host failure(s) at once")
    if policy.failure_domain:
        scope.append(f"one {policy.failure_domain} at a time")
    console.print(f"HA reserve check: {' and '.join(scope)}, {len(report.failures)} failures")
    bad = sorted(
        (f for f in report.failures if f.stranded), key=lambda f: (-len(f.stranded), f.name)
    )
    for f in bad[:MAX_FAILURES_SHOWN]:
        names = ", ".join(f.stranded[:8]) + (" ..." if len(f.stranded) > 8 else "")
        console.print(
            f"  [red]{f.name}[/]: {len(f.stranded)} of {len(f.vms)} VMs stranded ({names}); "
            f"{_shortfall(f.shortfall)}; at least {f.extra_hosts} more host(s) of the largest "
            "model to cover them",
            highlight=False,
        )
    if len(bad) > MAX_FAILURES_SHOWN:
        console.print(f"  ... {len(bad) - MAX_FAILURES_SHOWN} more failures strand VMs")
    if not report.exhaustive:
        console.print("  (too many combinations: the most loaded hosts were failed together)")
    if report.satisfied:
        console.print("[green]OK[/]: every failure's VMs restart on the surviving hosts")
    else:
        worst = report.worst
        assert worst is not None
        console.print(
            f"[red]RESERVE MISSING[/]: {len(bad)} of {len(report.failures)} failures strand VMs; "
            f"worst {worst.name}: {len(worst.stranded)} VMs, {_shortfall(worst.shortfall)}, "
            f"at least {worst.extra_hosts} more host(s)",
            highlight=False,
        )
