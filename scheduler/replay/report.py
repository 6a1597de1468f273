"""What a replay shows: the key numbers per policy, beside the baseline, and its pictures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from scheduler.output import pictures
from scheduler.output.html import Report
from scheduler.replay.simulate import ReplayResult, ReplaySettings
from scheduler.replay.traces import Trace

COLUMNS = (
    ("active_host_hours", "active host-hours"),
    ("energy_kwh", "energy kWh"),
    ("migrations", "migrations"),
    ("memory_moved_gib", "memory moved GiB"),
    ("overload_host_hours", "overload host-hours"),
    ("overload_incidents", "overload incidents"),
    ("sla_violation_host_hours", "SLA violation host-hours"),
    ("unserved_cpu_share", "unserved CPU share"),
)
COMPARED = ("active_host_hours", "energy_kwh", "overload_host_hours", "migrations")


def baseline_of(results: Sequence[ReplayResult]) -> str:
    names = [r.policy for r in results]
    return "never" if "never" in names else names[0]


def rows(results: Sequence[ReplayResult]) -> list[list[object]]:
    base = next(r.summary() for r in results if r.policy == baseline_of(results))
    out: list[list[object]] = []
    for result in results:
        summary = result.summary()
        ratio = (
            summary["active_host_hours"] / base["active_host_hours"]
            if base["active_host_hours"]
            else 0.0
        )
        out.append([result.policy, *(summary[k] for k, _ in COLUMNS), round(ratio, 3)])
    return out


def header(results: Sequence[ReplayResult]) -> list[str]:
    return ["policy", *(label for _, label in COLUMNS), f"host-hours / {baseline_of(results)}"]


def figures(results: Sequence[ReplayResult]) -> dict[str, tuple[str, Callable[[], Figure]]]:
    """name -> (caption, figure maker); made lazily so each is drawn once per output."""
    hours = results[0].interval_s / 3600
    by = {r.policy: r for r in results}
    summaries = [r.summary() for r in results]
    return {
        "active-hosts": (
            "Active hosts over time",
            lambda: pictures.over_time(
                {p: r.active_hosts for p, r in by.items()}, hours, "Active hosts", "hosts"
            ),
        ),
        "migrations": (
            "Migrations per interval",
            lambda: pictures.over_time(
                {p: r.migrations for p, r in by.items()},
                hours,
                "Migrations per interval",
                "migrations",
                drawstyle="steps-post",
            ),
        ),
        "power": (
            "Power drawn by the active hosts",
            lambda: pictures.over_time(
                {p: [w / 1000 for w in r.power_w] for p, r in by.items()}, hours, "Power", "kW"
            ),
        ),
        "utilisation": (
            "CPU use per active host, first and last step",
            lambda: pictures.before_after(
                {p: (r.first_loads, r.last_loads) for p, r in by.items()},
                ("first step", "last step"),
                "CPU use / host capacity",
            ),
        ),
        "policies": (
            "Policies compared (1 = the baseline)",
            lambda: pictures.compared(summaries, COMPARED, baseline_of(results)),
        ),
    }


def html(
    results: Sequence[ReplayResult],
    trace: Trace,
    hosts: int,
    settings: ReplaySettings,
    extra: dict[str, Any],
) -> str:
    report = Report(f"Replay of {trace.name}: {', '.join(r.policy for r in results)}")
    report.notes.append(
        f"{trace.vm_count} VMs on {hosts} hosts, {trace.steps} steps of {trace.interval_s} s "
        f"({trace.steps * trace.interval_s / 3600:g} h); decisions every "
        f"{settings.decide_every} steps; packing up to {settings.target_load:.0%} of a host's "
        f"CPU; overloaded above {settings.overload_at:.0%}; SLA violation: demand above 100 %."
    )
    report.notes.extend(f"{k}: {v}" for k, v in extra.items())
    report.table("Key numbers", header(results), rows(results))
    for caption, make in figures(results).values():
        report.figure(caption, pictures.svg(make()))
    return report.render()
