"""The baselines the benchmarks print beside vmpack's answer.

``keep_in_place_baseline`` is the classic consolidation heuristic: empty the least-loaded
hosts first, first-fit their VMs onto the other active hosts, keep everything else where it
is. ``first_fit_decreasing`` (largest first, from scratch) is one of vmpack's own starts, so
the benchmarks import it from there.
"""

from __future__ import annotations

import numpy as np

from scheduler.model import Cluster
from scheduler.placement.packer import Packer, place_pending
from scheduler.solver.starts.greedy import empty_hosts


def least_loaded_first(packer: Packer) -> list[str]:
    def key(host: str) -> float:
        i = packer.index[host]
        return float(
            ((packer.capacity[i] - packer.free[i]) / np.maximum(packer.capacity[i], 1)).max()
        )

    return sorted((h for h in packer.hosts if packer.state.residents[h]), key=key)


def keep_in_place_baseline(cluster: Cluster) -> dict[str, str | None]:
    """The classic heuristic: empty the least-loaded hosts first, first-fit their VMs onto
    the other active hosts, keep everything else where it is."""
    packer = Packer(cluster, cluster.current_placement)
    place_pending(packer, [v.name for v in cluster.vms if v.host is None], fit="first")
    empty_hosts(packer, least_loaded_first(packer), fit="first")
    return packer.state.placement()
