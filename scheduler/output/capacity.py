"""Pictures and the HTML report of a capacity answer, and of a sweep of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.figure import Figure

from scheduler.model import MEMORY, VCPUS, Cluster, host_loads
from scheduler.output import pictures
from scheduler.output.html import Report
from scheduler.units import format_mib
from scheduler.whatif.capacity import Answer

SHOWN = ((VCPUS, "CPU"), (MEMORY, "memory"))


def host_shares(cluster: Cluster, placement: dict[str, str | None], resource: str) -> list[float]:
    """Allocated share of each active host's capacity for one resource."""
    loads = host_loads(cluster, placement)
    return [
        loads[h.name].get(resource, 0) / h.capacity[resource]
        for h in cluster.hosts
        if any(p == h.name for p in placement.values()) and h.capacity.get(resource)
    ]


def answer_figures(result: Answer) -> dict[str, tuple[str, Callable[[], Figure]]]:
    cluster = result.outcome.cluster
    before = dict(cluster.current_placement)
    after = dict(result.outcome.decision.placement)
    rows = [
        (
            h.resource,
            h.allocated / h.capacity,
            (h.free - h.stranded) / h.capacity,
            h.stranded / h.capacity,
        )
        for h in result.headroom
        if h.capacity
    ]
    return {
        "utilisation": (
            "Allocation per host, today and after the plan",
            lambda: pictures.before_after(
                {
                    label: (host_shares(cluster, before, r), host_shares(cluster, after, r))
                    for r, label in SHOWN
                },
                ("today", "after"),
                "allocated / capacity",
            ),
        ),
        "headroom": ("Headroom per resource", lambda: pictures.headroom(rows)),
    }


def answer_html(result: Answer, question: str, figures: dict[str, str]) -> str:
    summary = result.outcome.summary()
    report = Report(f"What if: {question or 'nothing changes'}")
    report.table(
        "Key numbers",
        ["figure", "value"],
        [
            ["hosts needed", result.hosts_needed],
            ["proven lower bound", summary["lower_bound"]],
            ["hosts that stay on", len(result.hosts_on)],
            ["HA reserve holds", "yes" if result.ha_holds else f"no: {result.ha_worst}"],
            ["VMs without a host", len(summary["unplaced_or_stranded"])],
            ["migrations from today", summary["moves"]],
            ["memory moved", format_mib(summary["memory_moved_mib"])],
        ],
    )
    report.table(
        "Headroom",
        ["resource", "capacity", "allocated", "free", "stranded"],
        [[h.resource, h.capacity, h.allocated, h.free, h.stranded] for h in result.headroom],
    )
    for caption, svg in figures.items():
        report.figure(caption, svg)
    return report.render()


SWEEP_COLUMNS = (
    "case",
    "hosts_needed",
    "hosts_lower_bound",
    "hosts_on",
    "ha_holds",
    "vms_without_host",
    "seconds",
)


def sweep_rows(results: Sequence[dict[str, Any]]) -> list[list[object]]:
    return [
        [
            r["case"],
            r["hosts_needed"],
            r["hosts_lower_bound"],
            r["hosts_on"],
            "yes" if r["ha"]["holds"] else "no",
            len(r["vms_without_host"]),
            r["seconds"],
        ]
        for r in results
    ]


def sweep_figure(results: Sequence[dict[str, Any]]) -> Figure:
    failures = list(dict.fromkeys(r["failed"] or "none" for r in results))
    growths = list(dict.fromkeys(r["growth_pct"] for r in results))
    cell = {((r["failed"] or "none"), r["growth_pct"]): r["hosts_needed"] for r in results}
    values = [[float(cell.get((f, g), 0)) for g in growths] for f in failures]
    return pictures.grid(values, failures, [f"+{g:g}%" for g in growths], "Hosts needed")


def sweep_html(results: Sequence[dict[str, Any]], title: str, notes: list[str]) -> str:
    report = Report(title, notes)
    report.figure("Hosts needed per case", pictures.svg(sweep_figure(results)))
    report.table("Cases", [c.replace("_", " ") for c in SWEEP_COLUMNS], sweep_rows(results))
    return report.render()
