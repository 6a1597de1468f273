"""Usage traces: what each VM reserves and what it uses, step by step.

Readers (every error names the file, the line and the column):

- ``planetlab``: one file per VM, one CPU utilisation percentage per line (the CloudSim
  PlanetLab layout), in a directory or a ``.tar[.xz|.gz]``; or one CSV with a header of VM
  names and a row of percentages per step. VMs get the CloudSim sizes by contiguous quarters
  of the (name-sorted) list.
- ``bitbrains``: one CSV per VM in the GWA-T-12 layout (``;`` separated, tab padded) with the
  columns ``Timestamp [ms]`` (seconds, despite the name), ``CPU capacity provisioned [MHZ]``,
  ``CPU usage [MHZ]`` and ``Memory capacity provisioned [KB]``; rows are averaged into steps.
- ``azure``: see ``scheduler.replay.azure``.
"""

from __future__ import annotations

import csv
import io
import math
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# CloudSim's PlanetLab VM types (MIPS, RAM MB), one per quarter of the VM list.
CLOUDSIM_VM_TYPES = ((2500, 870), (2000, 1740), (1000, 1740), (500, 613))
BITBRAINS_COLUMNS = (
    "Timestamp [ms]",
    "CPU capacity provisioned [MHZ]",
    "CPU usage [MHZ]",
    "Memory capacity provisioned [KB]",
)


class TraceError(ValueError):
    """Bad trace input: ``file:line: reason``."""


@dataclass(frozen=True)
class Trace:
    """VM ``i`` reserves ``cpu_mhz[i]`` and ``memory_mib[i]``, runs for steps
    ``start[i] <= k < end[i]`` and uses ``usage_mhz[i, k]`` MHz of CPU in step ``k``."""

    name: str
    interval_s: int
    vm_names: tuple[str, ...]
    cpu_mhz: np.ndarray  # int, per VM
    memory_mib: np.ndarray  # int, per VM
    usage_mhz: np.ndarray  # float, VMs x steps
    start: np.ndarray  # int, per VM
    end: np.ndarray  # int, per VM

    @property
    def steps(self) -> int:
        return int(self.usage_mhz.shape[1])

    @property
    def vm_count(self) -> int:
        return len(self.vm_names)

    def alive(self, step: int) -> np.ndarray:
        return (self.start <= step) & (step < self.end)

    def cut(self, steps: int) -> Trace:
        """The first ``steps`` steps only."""
        steps = min(steps, self.steps)
        keep = self.start < steps
        return Trace(
            self.name,
            self.interval_s,
            tuple(np.array(self.vm_names, dtype=object)[keep]),
            self.cpu_mhz[keep],
            self.memory_mib[keep],
            self.usage_mhz[keep, :steps],
            self.start[keep],
            np.minimum(self.end[keep], steps),
        )


def constant_trace(
    name: str, interval_s: int, steps: int, vms: list[tuple[str, int, int, float]]
) -> Trace:
    """VMs (name, reserved MHz, memory MiB, share used) that use a constant share throughout."""
    cpu = np.array([v[1] for v in vms], dtype=np.int64)
    usage = np.repeat((cpu * np.array([v[3] for v in vms]))[:, None], steps, axis=1)
    return Trace(
        name,
        interval_s,
        tuple(v[0] for v in vms),
        cpu,
        np.array([v[2] for v in vms], dtype=np.int64),
        usage.astype(float),
        np.zeros(len(vms), dtype=np.int64),
        np.full(len(vms), steps, dtype=np.int64),
    )


def _members(path: Path) -> Iterator[tuple[str, str]]:
    """(display name, text) of every file in a directory or tar archive, sorted by name."""
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            yield str(file), file.read_text(encoding="utf-8", errors="replace")
        return
    try:
        archive = tarfile.open(path)  # noqa: SIM115 (closed by the with below; opening may fail)
    except (OSError, tarfile.TarError) as exc:
        raise TraceError(f"{path}: cannot read as a directory or tar archive: {exc}") from None
    with archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is not None:
                text = handle.read().decode("utf-8", errors="replace")
                yield f"{path}:{member.name}", text


def _number(where: str, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}:{line}: {column}: '{text.strip()}' is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{where}:{line}: {column}: '{text.strip()}' is not a number >= 0")
    return value


def load_planetlab(path: Path, interval_s: int = 300) -> Trace:
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix.lower() == ".csv":
        names, series = _wide_csv(path)
    else:
        names, series = [], []
        for where, text in _members(path):
            values = [
                _number(where, i, "utilisation %", line)
                for i, line in enumerate(text.splitlines(), start=1)
                if line.strip()
            ]
            names.append(where.rsplit("/", 1)[-1])
            series.append(values)
    if not series:
        raise TraceError(f"{path}: no VM traces found")
    steps = min(len(s) for s in series)
    if steps == 0:
        raise TraceError(f"{path}: {names[[len(s) for s in series].index(0)]}: no samples")
    percent = np.array([s[:steps] for s in series], dtype=float)
    if (over := np.argwhere(percent > 100)).size:
        vm, step = over[0]
        raise TraceError(f"{path}: {names[vm]}:{step + 1}: utilisation above 100 %")
    quarter = np.arange(len(names)) * len(CLOUDSIM_VM_TYPES) // len(names)
    mips = np.array([CLOUDSIM_VM_TYPES[q][0] for q in quarter], dtype=np.int64)
    ram = np.array([CLOUDSIM_VM_TYPES[q][1] for q in quarter], dtype=np.int64)
    count = len(names)
    return Trace(
        path.name,
        interval_s,
        tuple(names),
        mips,
        ram,
        percent / 100 * mips[:, None],
        np.zeros(count, dtype=np.int64),
        np.full(count, steps, dtype=np.int64),
    )


def _wide_csv(path: Path) -> tuple[list[str], list[list[float]]]:
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise TraceError(f"{path}:1: a header of VM names is missing")
    names = [cell.strip() for cell in rows[0]]
    series: list[list[float]] = [[] for _ in names]
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(names):
            raise TraceError(f"{path}:{number}: {len(row)} values for {len(names)} VMs")
        for column, (name, cell) in enumerate(zip(names, row, strict=True)):
            series[column].append(_number(str(path), number, name, cell))
    return names, series


def load_bitbrains(path: Path, interval_s: int = 300) -> Trace:
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix.lower() == ".csv":
        files = [(str(path), path.read_text(encoding="utf-8"))]
    else:
        files = [(w, t) for w, t in _members(path) if w.endswith(".csv")]
    if not files:
        raise TraceError(f"{path}: no .csv VM traces found")
    parsed = [_bitbrains_file(where, text) for where, text in files]
    t0 = min(rows[0][0] for rows in parsed)
    steps = max(int((rows[-1][0] - t0) // interval_s) + 1 for rows in parsed)
    count = len(parsed)
    usage = np.zeros((count, steps))
    start = np.zeros(count, dtype=np.int64)
    end = np.zeros(count, dtype=np.int64)
    cpu = np.zeros(count, dtype=np.int64)
    memory = np.zeros(count, dtype=np.int64)
    for i, rows in enumerate(parsed):
        table = np.array(rows)
        step = ((table[:, 0] - t0) // interval_s).astype(np.int64)
        total = np.bincount(step, weights=table[:, 2], minlength=steps)
        seen = np.bincount(step, minlength=steps)
        start[i], end[i] = step.min(), step.max() + 1
        series = np.divide(total, seen, out=np.full(steps, np.nan), where=seen > 0)
        usage[i] = _carry_forward(series, start[i])
        cpu[i] = math.ceil(table[:, 1].max())
        memory[i] = math.ceil(table[:, 3].max() / 1024)
    names = tuple(w.rsplit("/", 1)[-1].removesuffix(".csv") for w, _ in files)
    return Trace(
        path.name, interval_s, names, cpu, memory, np.minimum(usage, cpu[:, None]), start, end
    )


def _carry_forward(series: np.ndarray, first: int) -> np.ndarray:
    """Steps without a sample keep the previous step's value (zero before the first)."""
    out = np.zeros_like(series)
    last = 0.0
    for k in range(first, len(series)):
        if not math.isnan(series[k]):
            last = float(series[k])
        out[k] = last
    return out


def _bitbrains_file(where: str, text: str) -> list[tuple[float, float, float, float]]:
    lines = text.splitlines()
    if not lines:
        raise TraceError(f"{where}:1: empty file")
    header = [cell.strip() for cell in lines[0].split(";")]
    missing = [c for c in BITBRAINS_COLUMNS if c not in header]
    if missing:
        raise TraceError(f"{where}:1: missing column '{missing[0]}'")
    index = [header.index(c) for c in BITBRAINS_COLUMNS]
    rows: list[tuple[float, float, float, float]] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split(";")
        if len(cells) < len(header):
            raise TraceError(
                f"{where}:{number}: {len(cells)} columns, the header has {len(header)}"
            )
        t, cap, used, mem = (
            _number(where, number, c, cells[i])
            for c, i in zip(BITBRAINS_COLUMNS, index, strict=True)
        )
        rows.append((t, cap, used, mem))
    if not rows:
        raise TraceError(f"{where}:2: no samples")
    rows.sort()
    return rows
