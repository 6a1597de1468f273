"""The Azure VM arrival stream (the layout of ``trace_generation_rnn``'s ``v1.*`` files).

- ``flav_map.txt``: ``<vcpus>,<memory GB> <letter>`` per flavour;
- the arrivals file (``TRACE``, plain or ``.xz``): ``<t> <tokens>`` per 300-s bin, tokens are
  flavour letters and ``|`` between tenant batches;
- optional lifetimes beside it (``<stem>.c<T>.txt[.xz]``, same token positions, ``U<k>``
  ended, ``C<k>`` still running at T) with ``v1.interval_map.txt`` (``<seconds> <bin>``);
  without them VMs never leave.

The stream carries sizes, not usage: a VM is taken to use its whole reservation (vCPUs at
``CORE_MHZ``), so the replay measures packing and churn, not CPU overload.
"""

from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np

from scheduler.replay.traces import Trace, TraceError

CORE_MHZ = 2600


def _read(path: Path) -> list[str]:
    try:
        if path.suffix == ".xz":
            with lzma.open(path, "rt", encoding="utf-8") as handle:
                return handle.read().splitlines()
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TraceError(
            f"{path}: missing (the azure layout keeps it beside the arrivals)"
        ) from None
    except (OSError, lzma.LZMAError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from None


def _flavours(path: Path) -> dict[str, tuple[int, int]]:
    flavours: dict[str, tuple[int, int]] = {}
    for number, line in enumerate(_read(path), start=1):
        if not line.strip():
            continue
        try:
            size, letter = line.split()
            vcpus, memory_gb = size.split(",")
            flavours[letter] = (int(vcpus), int(float(memory_gb) * 1024))
        except ValueError:
            raise TraceError(f"{path}:{number}: expected '<vcpus>,<memory GB> <letter>'") from None
    return flavours


def _bins(path: Path) -> dict[int, int]:
    """Lifetime bin -> a representative duration (the mean of the durations in it)."""
    spans: dict[int, list[int]] = {}
    for number, line in enumerate(_read(path), start=1):
        try:
            seconds, index = (int(x) for x in line.split())
        except ValueError:
            raise TraceError(f"{path}:{number}: expected '<seconds> <bin>'") from None
        spans.setdefault(index, []).append(seconds)
    return {k: int(np.mean(v)) for k, v in spans.items()}


def _tokens(path: Path, lines: list[str]) -> list[tuple[int, int, list[str]]]:
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        head, _, rest = line.partition(" ")
        if not head.isdigit():
            raise TraceError(f"{path}:{number}: time: '{head}' is not a whole number of seconds")
        rows.append((number, int(head), [t for t in rest.strip().split(",") if t and t != "|"]))
    if not rows:
        raise TraceError(f"{path}: no arrivals")
    return rows


def load_azure(path: Path, interval_s: int = 300, share: float = 1.0) -> Trace:
    if not path.is_file():
        raise TraceError(f"{path}: no such file")
    flavours = _flavours(path.parent / "flav_map.txt")
    arrivals = _tokens(path, _read(path))
    stem = path.name.removesuffix(".xz").removesuffix(".txt")
    lifetime_files = sorted(path.parent.glob(f"{stem}.c*.txt*"))
    lifetimes = _tokens(lifetime_files[0], _read(lifetime_files[0])) if lifetime_files else None
    bins = _bins(path.parent / "v1.interval_map.txt") if lifetime_files else {}
    t0 = arrivals[0][1]
    steps = (arrivals[-1][1] - t0) // interval_s + 1
    names, cpu, memory, start, end = [], [], [], [], []
    seen = 0
    for row, (number, t, tokens) in enumerate(arrivals):
        ends = lifetimes[row][2] if lifetimes else ["C"] * len(tokens)
        if lifetimes and (lifetimes[row][1] != t or len(ends) != len(tokens)):
            raise TraceError(
                f"{lifetime_files[0]}:{lifetimes[row][0]}: does not match {path.name} line {number}"
            )
        for position, (letter, life) in enumerate(zip(tokens, ends, strict=True)):
            seen += 1
            if int(seen * share) == int((seen - 1) * share):
                continue  # thinned out
            if letter not in flavours:
                raise TraceError(
                    f"{path}:{number}: token {position + 1}: unknown flavour '{letter}'"
                )
            step = (t - t0) // interval_s
            names.append(f"{letter}-{seen}")
            cpu.append(flavours[letter][0] * CORE_MHZ)
            memory.append(flavours[letter][1])
            start.append(step)
            end.append(_end(step, life, bins, steps, interval_s, lifetime_files, number))
    if not names:
        raise TraceError(f"{path}: no VM left after --vm-share {share}")
    reserved = np.array(cpu, dtype=np.int64)
    running = (np.arange(steps)[None, :] >= np.array(start)[:, None]) & (
        np.arange(steps)[None, :] < np.array(end)[:, None]
    )
    usage = np.where(running, reserved[:, None].astype(float), 0.0)
    return Trace(
        path.name,
        interval_s,
        tuple(names),
        reserved,
        np.array(memory, dtype=np.int64),
        usage,
        np.array(start, dtype=np.int64),
        np.array(end, dtype=np.int64),
    )


def _end(
    step: int,
    life: str,
    bins: dict[int, int],
    steps: int,
    interval_s: int,
    files: list[Path],
    number: int,
) -> int:
    if life.startswith("C"):
        return steps
    if not life.startswith("U") or not life[1:].isdigit() or int(life[1:]) not in bins:
        raise TraceError(f"{files[0]}:{number}: '{life}' is not U<bin> or C<bin>")
    return min(steps, step + max(1, -(-bins[int(life[1:])] // interval_s)))
