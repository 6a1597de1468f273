"""What the host-closing search works on: a packing as arrays, and the budget that stops it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packing:
    """What the search may change: VMs (rows of ``sizes``) onto hosts (rows of ``room``)."""

    room: np.ndarray  # hosts x resources: capacity left by the VMs that stay where they are
    sizes: np.ndarray  # vms x resources
    allowed: np.ndarray  # vms x hosts, boolean
    always_on: np.ndarray  # hosts active whatever happens (they keep VMs that stay)


@dataclass(frozen=True)
class Budget:
    deadline: float  # time.monotonic() value
    steps: int | None = None  # also stop after this many steps (repeatable runs)


def active_count(packing: Packing, assignment: np.ndarray) -> int:
    used = packing.always_on.copy()
    used[assignment] = True
    return int(used.sum())
