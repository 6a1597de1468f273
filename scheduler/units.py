"""Sizes as operators write them: ``512MiB``, ``16GiB``, ``4TiB`` (binary) or ``2TB`` (decimal).
Everything is converted to whole MiB, rounding decimal sizes up so a VM never shrinks."""

from __future__ import annotations

import math
import re

_UNITS_BYTES = {
    "": 2**20,  # a bare number is MiB
    "b": 1,
    "k": 10**3, "kb": 10**3, "kib": 2**10,
    "m": 2**20, "mb": 10**6, "mib": 2**20,
    "g": 2**30, "gb": 10**9, "gib": 2**30,
    "t": 2**40, "tb": 10**12, "tib": 2**40,
    "p": 2**50, "pb": 10**15, "pib": 2**50,
}  # fmt: skip
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
MAX_SIZE_MIB = 2**40  # 1 EiB: far beyond any host, well within every integer a store keeps


def parse_size_mib(value: object) -> int:
    """Return ``value`` in MiB. Raises ValueError with an operator-readable reason."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size like 16GiB, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return _bounded(value, value)
    if not isinstance(value, str):
        raise ValueError(f"must be a size like 16GiB, got {value!r}")
    if value.strip().startswith("-"):
        raise ValueError(f"must not be negative, got {value!r}")
    match = _SIZE.match(value)
    if not match or match.group(2).lower() not in _UNITS_BYTES:
        raise ValueError(f"must be a size like 512MiB, 16GiB, 4TiB or 2TB, got {value!r}")
    number, unit = float(match.group(1)), match.group(2).lower()
    return _bounded(number * _UNITS_BYTES[unit] / 2**20, value)


def _bounded(mib: float, given: object) -> int:
    if not math.isfinite(mib) or mib > MAX_SIZE_MIB:
        raise ValueError(f"must be at most {MAX_SIZE_MIB} MiB (1 EiB), got {given!r}")
    return math.ceil(mib)


def format_mib(mib: float) -> str:
    for unit, size in (("TiB", 2**20), ("GiB", 2**10)):
        if abs(mib) >= size:
            return f"{mib / size:.1f} {unit}"
    return f"{mib:.0f} MiB"
