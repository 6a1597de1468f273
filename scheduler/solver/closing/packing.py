"""What the host-closing search works on: a packing as arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Packing:
    """What the search may change: VMs (rows of ``sizes``) onto hosts (rows of ``room``)."""

    room: np.ndarray  # hosts x resources: capacity left by the VMs that stay where they are
    sizes: np.ndarray  # vms x resources
    kind: np.ndarray  # vms: a row of ``allowed``; VMs that fit and may go the same hosts share it
    allowed: np.ndarray  # kinds x hosts, boolean: never one row per VM
    always_on: np.ndarray  # hosts active whatever happens (they keep VMs that stay)


def active_count(packing: Packing, assignment: np.ndarray) -> int:
    used = packing.always_on.copy()
    used[assignment] = True
    return int(used.sum())
