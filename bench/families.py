"""Families of benchmark clusters, from easy to hard, generated and derived from real data.

Each family turns a size (hosts, VMs) and a seed into scenario data. What varies between
them is what makes packing hard: the CPU:memory ratio of the VMs (1:2 to 1:8 GiB), identical
or mixed host models, overcommit 1.0 or 4.0, and a start spread out (every host partly used)
or half consolidated (half the hosts nearly full, the rest nearly empty).

    cloud-identical     public-cloud flavour mix, identical hosts, overcommit 1.0, spread out
    cloud-mixed         the same VMs on three host models, CPU overcommit 4.0
    half-consolidated   cloud-identical, but half the hosts already nearly full
    from-scratch        cloud-identical's VMs all waiting: how few hosts hold them?
    azure               VM sizes drawn as often as Azure 2017 arrivals ask for them
    bitbrains           VM sizes of the Bitbrains Rnd business-critical VMs
    planetlab           CloudSim's PlanetLab VM types, CPU demand from the day's utilisation

The three real-data families read ``../shared/data`` (the path is a parameter); the
generated ones need nothing.
"""

from __future__ import annotations

import argparse
import csv
import lzma
import random
import tarfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"

# (vCPUs, GiB) with CPU:memory from 1:2 to 1:8, weighted as general purpose (1:4) dominates.
CLOUD_FLAVOURS = [
    (1, 2), (2, 4), (4, 8), (8, 16), (16, 32),        # compute, 1:2
    (1, 4), (2, 8), (4, 16), (8, 32), (16, 64),       # general purpose, 1:4
    (2, 16), (4, 32), (8, 64), (16, 128),             # memory, 1:8
]  # fmt: skip
CLOUD_WEIGHTS = [6, 8, 6, 3, 1, 8, 14, 12, 6, 2, 6, 5, 3, 1]
IDENTICAL = [(128, 512, 4)]  # cpus, GiB, TiB
MIXED = [(64, 384, 4), (96, 768, 8), (128, 512, 4)]
DISKS_GIB = [20, 40, 80, 160]


def add_arguments(parser: argparse.ArgumentParser, sizes: str, limits: str) -> None:
    """The arguments every benchmark over the families takes."""
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--sizes", default=sizes, help="HOSTSxVMS, comma separated")
    parser.add_argument("--time-limit", default=limits, help="one per size, comma separated")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shared", type=Path, default=SHARED)


def cases(args: argparse.Namespace) -> list[tuple[str, int, int, float]]:
    """(family, hosts, VMs, time limit) for each size, each family: sizes pair up with the
    limits in order, and a single limit serves every size."""
    sizes = [tuple(int(x) for x in size.split("x")) for size in args.sizes.split(",")]
    limits = [float(x) for x in args.time_limit.split(",")]
    if len(limits) == 1:
        limits *= len(sizes)
    return [
        (family, hosts, vms, limit)
        for (hosts, vms), limit in zip(sizes, limits, strict=True)
        for family in args.families.split(",")
    ]


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[int, int, int, Path], dict[str, Any]]  # hosts, vms, seed, shared data
    real_data: bool = False


def _hosts(count: int, models: Sequence[tuple[int, int, int]]) -> list[dict[str, Any]]:
    racks = max(1, count // 20)
    return [
        {
            "name": f"h{i:05d}",
            "cpus": models[i % len(models)][0],
            "memory": f"{models[i % len(models)][1]}GiB",
            "disk": f"{models[i % len(models)][2]}TiB",
            "labels": {"rack": f"r{i * racks // count:03d}"},
        }
        for i in range(count)
    ]


def _cluster(
    name: str,
    hosts: list[dict[str, Any]],
    sizes: Sequence[tuple[float, int]],  # (vCPUs, memory MiB) per VM
    rng: random.Random,
    cpu_ratio: float,
    full_share: float = 0.0,
    usage: Sequence[float] | None = None,
    disks_gib: Sequence[int] = DISKS_GIB,
) -> dict[str, Any]:
    """VMs placed as a long-running cluster drifts: each on the first host with room from a
    random start. With ``full_share`` > 0 that share of the hosts is filled first, to about
    90 %, and the rest spread over the others."""
    cpu_free = [h["cpus"] * cpu_ratio for h in hosts]
    mem_free = [_gib(h["memory"]) * 1024 for h in hosts]
    disk_free = [int(h["disk"].removesuffix("TiB")) * 1024 for h in hosts]
    disks = [rng.choice(disks_gib) for _ in sizes]
    full = int(len(hosts) * full_share)
    targets = [0.9 * m for m in mem_free[:full]]
    vms = []
    for j, (vcpus, mem) in enumerate(sizes):

        def fits(i: int, cpus: float = vcpus, mem: int = mem, disk: int = disks[j]) -> bool:
            return mem_free[i] >= mem and cpu_free[i] >= cpus and disk_free[i] >= disk

        host = None
        for i in range(full):  # the nearly full hosts take what fits below 90 %
            used = _gib(hosts[i]["memory"]) * 1024 - mem_free[i]
            if used + mem <= targets[i] and fits(i):
                host = i
                break
        if host is None:
            start = rng.randrange(full, len(hosts)) if full < len(hosts) else 0
            order = [*range(start, len(hosts)), *range(full, start)]
            host = next((i for i in order if fits(i)), None)
        if host is None:
            raise ValueError(f"{name}: {len(sizes)} VMs do not fit on {len(hosts)} hosts")
        mem_free[host] -= mem
        cpu_free[host] -= vcpus
        disk_free[host] -= disks[j]
        row: dict[str, Any] = {
            "name": f"vm{j:06d}",
            "vcpus": vcpus,
            "memory": f"{mem}MiB",
            "disk": f"{disks[j]}GiB",
            "host": hosts[host]["name"],
        }
        if usage is not None:
            row["usage"] = {"cpu": usage[j]}
        vms.append(row)
    return {
        "name": name,
        "hosts": hosts,
        "vms": vms,
        "policy": {"overcommit": {"cpu": cpu_ratio, "memory": 1.0, "disk": 1.0}},
        "limits": {"max_parallel": 32, "max_parallel_per_host": 2},
        "goal": "consolidate",
    }


def _gib(text: str) -> int:
    return int(text.removesuffix("GiB"))


def _cloud_sizes(vms: int, rng: random.Random) -> list[tuple[float, int]]:
    picks = rng.choices(CLOUD_FLAVOURS, weights=CLOUD_WEIGHTS, k=vms)
    return [(c, m * 1024) for c, m in picks]


def cloud_identical(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    return _cluster("cloud-identical", _hosts(hosts, IDENTICAL), _cloud_sizes(vms, rng), rng, 1.0)


def cloud_mixed(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    return _cluster("cloud-mixed", _hosts(hosts, MIXED), _cloud_sizes(vms, rng), rng, 4.0)


def half_consolidated(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    sizes = _cloud_sizes(vms, rng)
    return _cluster("half-consolidated", _hosts(hosts, IDENTICAL), sizes, rng, 1.0, 0.5)


def from_scratch(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    data = cloud_identical(hosts, vms, seed, shared)
    for vm in data["vms"]:
        del vm["host"]
    data["name"] = "from-scratch"
    return data


def azure(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    """Flavours weighted by how often the Azure 2017 trace's training period asks for them."""
    root = shared / "azure_v1_flavor_traces"
    flavours = {}
    for line in (root / "flav_map.txt").read_text().splitlines():
        size, letter = line.split()
        cpus, gb = size.split(",")
        flavours[letter] = (int(cpus), round(float(gb) * 1024))
    counts: Counter[str] = Counter()
    with lzma.open(root / "v1.train.txt.xz", "rt") as trace:
        for line in trace:
            _, _, tokens = line.partition(" ")
            counts.update(t for t in tokens.strip().split(",") if t in flavours)
    rng = random.Random(seed)
    letters = sorted(counts)
    picks = rng.choices(letters, weights=[counts[x] for x in letters], k=vms)
    sizes = [(float(flavours[x][0]), flavours[x][1]) for x in picks]
    # Azure's VMs are small (most 1-2 vCPUs, under 4 GiB): hosts of that generation.
    return _cluster("azure", _hosts(hosts, [(40, 256, 2), (64, 512, 4)]), sizes, rng, 1.0)


def bitbrains(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    """Sizes of the 1,750 Bitbrains Rnd VMs, drawn with replacement, with their mean CPU use."""
    with open(shared / "bitbrains_rnd" / "rnd_vm_summary.csv") as summary:
        rows = list(csv.DictReader(summary))
    rng = random.Random(seed)
    picks = rng.choices(rows, k=vms)
    sizes = [
        (float(max(1, int(r["cores_mode"]))), _mib(r["mem_provisioned_kb_mode"])) for r in picks
    ]
    usage = [round(float(r["cpu_usage_pct_mean"]) / 100, 3) for r in picks]
    return _cluster("bitbrains", _hosts(hosts, MIXED), sizes, rng, 4.0, usage=usage)


def _mib(kib: str) -> int:
    return max(256, round(float(kib) / 1024))


PLANETLAB_TYPES_MIB = [870, 1740, 1740, 613]  # CloudSim's four VM types, by quarter of the list


def planetlab(hosts: int, vms: int, seed: int, shared: Path) -> dict[str, Any]:
    """CloudSim's PlanetLab set-up, scaled: 1-vCPU VMs of its four memory types, each with the
    mean utilisation of one trace of 2011-03-03 and CloudSim's 2,500 MB image, on hosts of 16
    cores, 32 GiB and 1 TiB with CPU overcommitted 4 times (the traces' mean use is 12 %)."""
    with tarfile.open(shared / "planetlab" / "planetlab_20110303.tar.xz") as archive:
        means = []
        for member in archive:
            data = archive.extractfile(member) if member.isfile() else None
            if data is not None:
                samples = [int(x) for x in data.read().split()]
                means.append(round(sum(samples) / max(1, len(samples)) / 100, 3))
    rng = random.Random(seed)
    usage = [rng.choice(means) for _ in range(vms)]
    sizes = [(1.0, PLANETLAB_TYPES_MIB[4 * j // vms]) for j in range(vms)]
    order = list(range(vms))
    rng.shuffle(order)
    sizes, usage = [sizes[i] for i in order], [usage[i] for i in order]
    planetlab_hosts = _hosts(hosts, [(16, 32, 1)])
    return _cluster("planetlab", planetlab_hosts, sizes, rng, 4.0, usage=usage, disks_gib=[3])


FAMILIES = {
    f.name: f
    for f in [
        Family("cloud-identical", cloud_identical),
        Family("cloud-mixed", cloud_mixed),
        Family("half-consolidated", half_consolidated),
        Family("from-scratch", from_scratch),
        Family("azure", azure, real_data=True),
        Family("bitbrains", bitbrains, real_data=True),
        Family("planetlab", planetlab, real_data=True),
    ]
}
