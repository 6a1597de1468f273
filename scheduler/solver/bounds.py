"""Lower bounds that need no solver: on active hosts, and on moves for a given host count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import numpy as np

from scheduler.model import Cluster


def active_hosts_lower_bound(cluster: Cluster, vms: Collection[str] | None = None) -> int:
    """Fewest hosts that could hold ``vms`` (default: all VMs), from three arguments:

    - volume: per resource, the fewest of the largest usable hosts whose capacities add up
      to the total demand;
    - large VMs: per resource, VMs needing more than half of the largest host can never
      share a host with each other;
    - anti-affinity: a hard group of k VMs needs k hosts.
    """
    names = list(vms) if vms is not None else [v.name for v in cluster.vms]
    if not names:
        return 0
    usable = [h for h in cluster.hosts if h.accepts_vms]
    demand = [cluster.vm_by_name[n].demand for n in names]
    bound = 1
    for resource in cluster.resources:
        total = sum(d.get(resource, 0) for d in demand)
        if total == 0:
            continue
        capacities = sorted((h.capacity.get(resource, 0) for h in usable), reverse=True)
        running = np.cumsum(capacities) if capacities else np.zeros(1)
        # The first k whose capacities add up to the demand; more hosts than exist if none.
        needed = int(np.searchsorted(running, total)) + 1
        bound = max(bound, needed)
        if capacities:
            half = capacities[0] / 2
            bound = max(bound, sum(1 for d in demand if d.get(resource, 0) > half))
    wanted = set(names)
    for rule in cluster.hard_rules:
        bound = max(bound, rule.min_hosts(wanted))
    return bound


def moves_lower_bound(cluster: Cluster, hosts_after: int) -> int:
    """Ending with ``hosts_after`` active hosts out of the n active now, at least the VMs on
    the n - k hosts holding the fewest VMs must move."""
    per_host = Counter(v.host for v in cluster.vms if v.host is not None)
    emptied = max(0, len(per_host) - hosts_after)
    return sum(sorted(per_host.values())[:emptied])
