"""Plots for capacity reports: each function takes plain figures and returns a matplotlib
figure, which ``svg`` inlines into an HTML report and ``save`` writes as PNG or SVG."""

from __future__ import annotations

import argparse
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display here or on a server

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

SIZE = (8.0, 3.6)


def svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prologue: the SVG sits inside HTML


def save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format=path.suffix.lstrip(".").lower(), bbox_inches="tight", dpi=110)
    plt.close(fig)
    return path


Figures = Mapping[str, tuple[str, Callable[[], Figure]]]  # name -> (caption, figure maker)


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """The report options every command that draws shares."""
    parser.add_argument("--html", type=Path, help="write a one-file HTML report")
    parser.add_argument("--plots", type=Path, help="write the plots into this directory")
    parser.add_argument("--plot-format", choices=("png", "svg"), default="png")


def save_all(figures: Figures, directory: Path, suffix: str) -> None:
    """Each figure as ``<name>.<suffix>`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, (_, make) in figures.items():
        save(make(), directory / f"{name}.{suffix}")


def over_time(
    series: Mapping[str, Sequence[float]],
    step_hours: float,
    title: str,
    ylabel: str,
    drawstyle: str = "default",
) -> Figure:
    fig, ax = plt.subplots(figsize=SIZE)
    for name, values in series.items():
        hours = [i * step_hours for i in range(len(values))]
        ax.plot(hours, values, label=name, drawstyle=drawstyle, linewidth=1.4)
    ax.set_title(title)
    ax.set_xlabel("hours")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def before_after(
    panels: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    labels: tuple[str, str],
    ylabel: str,
) -> Figure:
    """Per-host values before and after, sorted high to low, one panel per name."""
    count = max(1, len(panels))
    fig, axes = plt.subplots(1, count, figsize=(SIZE[0], SIZE[1]), sharey=True, squeeze=False)
    for ax, (name, (before, after)) in zip(axes[0], panels.items(), strict=False):
        ax.plot(sorted(before, reverse=True), label=labels[0], linewidth=1.4)
        ax.plot(sorted(after, reverse=True), label=labels[1], linewidth=1.4)
        ax.set_title(name, fontsize="medium")
        ax.set_xlabel("hosts, busiest first")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    axes[0][0].legend(fontsize="small")
    return fig


def headroom(rows: Sequence[tuple[str, float, float, float]]) -> Figure:
    """(resource, allocated, free usable, stranded) as shares of capacity, stacked."""
    fig, ax = plt.subplots(figsize=(SIZE[0], 2.6))
    names = [r[0] for r in rows]
    left = [0.0] * len(rows)
    for index, (label, colour) in enumerate(
        (("allocated", "#4c72b0"), ("free", "#55a868"), ("stranded", "#c44e52")), start=1
    ):
        widths = [100 * float(r[index]) for r in rows]
        ax.barh(names, widths, left=left, label=label, color=colour)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("% of capacity on the hosts that stay on")
    ax.set_xlim(0, 100)
    ax.legend(fontsize="small", ncols=3, loc="lower right")
    ax.set_title("Headroom per resource")
    return fig


def compared(
    summaries: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    baseline: str,
    name_key: str = "policy",
) -> Figure:
    """Each key as a share of the baseline's value, one group of bars per key."""
    fig, ax = plt.subplots(figsize=SIZE)
    base = next(s for s in summaries if s[name_key] == baseline)
    width = 0.8 / max(1, len(summaries))
    for i, summary in enumerate(summaries):
        values = [
            (float(summary[k]) / float(base[k])) if float(base[k]) else float(summary[k] > 0)
            for k in keys
        ]
        ax.bar([x + i * width for x in range(len(keys))], values, width, label=summary[name_key])
    ax.set_xticks([x + width * (len(summaries) - 1) / 2 for x in range(len(keys))])
    ax.set_xticklabels([k.replace("_", " ") for k in keys], fontsize="small", rotation=15)
    ax.set_ylabel(f"relative to {baseline}")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.legend(fontsize="small")
    ax.set_title("Policies compared")
    return fig


def grid(
    values: Sequence[Sequence[float]], rows: Sequence[str], columns: Sequence[str], title: str
) -> Figure:
    """A heat map with the value written in each cell (sweeps: failure x growth)."""
    fig, ax = plt.subplots(figsize=(SIZE[0], max(2.4, 0.35 * len(rows) + 1)))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(columns)), list(columns))
    ax.set_yticks(range(len(rows)), list(rows))
    for r, row in enumerate(values):
        for c, value in enumerate(row):
            ax.text(c, r, f"{value:g}", ha="center", va="center", color="white", fontsize="small")
    fig.colorbar(image, ax=ax)
    ax.set_title(title)
    return fig
