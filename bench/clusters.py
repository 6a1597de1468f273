"""Generated clusters for benchmarks and bundled scenarios: mixed cloud flavours, spread out
over the hosts the way long-running clusters drift (every host partly used)."""

from __future__ import annotations

import random
from typing import Any

# Common public-cloud flavours (vCPUs, GiB): general purpose 1:4, compute 1:2, memory 1:8.
FLAVOURS = [
    (1, 2), (2, 4), (2, 8), (4, 8), (4, 16), (8, 16), (8, 32), (16, 64), (4, 32), (8, 64),
]  # fmt: skip
FLAVOUR_WEIGHTS = [8, 14, 12, 12, 16, 8, 12, 5, 7, 6]
HOST_MODELS = [(64, 512, 8), (96, 768, 12)]  # cpus, memory GiB, disk TiB


def host_row(name: str, model: tuple[int, int, int], rack: str) -> dict[str, Any]:
    cpus, mem, disk = model
    return {
        "name": name,
        "cpus": cpus,
        "memory": f"{mem}GiB",
        "disk": f"{disk}TiB",
        "labels": {"rack": rack},
    }


def spread_cluster(
    hosts: int, vms: int, seed: int = 1, fill: float = 0.45, racks: int = 0
) -> dict[str, Any]:
    """``vms`` VMs over ``hosts`` hosts, each host filled to about ``fill`` of its memory at
    random, so that consolidation has real work to do."""
    rng = random.Random(seed)
    racks = racks or max(1, hosts // 20)
    host_rows = [
        host_row(
            f"kvm-{i:04d}", HOST_MODELS[i % len(HOST_MODELS)], f"r{i * racks // hosts + 1:02d}"
        )
        for i in range(hosts)
    ]
    mem_free = [
        HOST_MODELS[i % len(HOST_MODELS)][1] * fill * rng.uniform(0.6, 1.4) for i in range(hosts)
    ]
    cpu_free = [HOST_MODELS[i % len(HOST_MODELS)][0] * 4.0 * 0.9 for i in range(hosts)]
    vm_rows = []
    for j in range(vms):
        vcpus, mem = rng.choices(FLAVOURS, weights=FLAVOUR_WEIGHTS)[0]
        start = rng.randrange(hosts)
        host = None
        for k in range(hosts):  # the first host from a random start with room
            i = (start + k) % hosts
            if mem_free[i] >= mem and cpu_free[i] >= vcpus:
                host = i
                break
        if host is None:
            host = min(range(hosts), key=lambda i: -mem_free[i])
        mem_free[host] -= mem
        cpu_free[host] -= vcpus
        app = rng.choice(["web", "api", "db", "cache", "batch", "ci"])
        vm_rows.append({
            "name": f"vm-{j:05d}", "vcpus": vcpus, "memory": f"{mem}GiB",
            "disk": f"{rng.choice([20, 40, 80, 160])}GiB", "host": f"kvm-{host:04d}",
            "labels": {"app": app},
        })  # fmt: skip
    return {
        "name": f"generated-{hosts}-hosts-{vms}-vms",
        "hosts": host_rows,
        "vms": vm_rows,
        "policy": {"overcommit": {"cpu": 4.0, "memory": 1.0, "disk": 1.0}},
        "limits": {"max_parallel": 16, "max_parallel_per_host": 2},
    }
