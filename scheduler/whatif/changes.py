"""Capacity-planning what-ifs: changes to a snapshot, applied in a fixed order, then answered
by the production engine.

Changes, as operators write them on the command line:
- ``--overcommit cpu=3``: allocation ratios (cpu, memory, disk);
- ``--host-model 128cpu/1TiB/8TiB``: every host replaced by this model (same names and labels);
- ``--remove-hosts 'kvm-0[1-9]'``: retire hosts (shell patterns); their VMs need a host;
- ``--fail rack=r3`` or ``--fail kvm-07``: hosts down; their VMs need a host;
- ``--grow cpu=20%,memory=10%``: every VM's demand grows (rounded up);
- ``--add 300x4vcpu/16GiB/100GiB``: new VMs waiting for a host.

The answer (``answer``) is a consolidation of the changed snapshot: hosts needed and the
proven lower bound, headroom and stranded capacity per resource, whether the HA reserve holds,
and the migration plan from today.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from scheduler.model import (
    CORE_RESOURCES,
    DISK,
    MEMORY,
    VCPUS,
    VM,
    Cluster,
    Host,
    HostState,
    allocatable,
)
from scheduler.units import parse_size_mib

KEYS = {"cpu": VCPUS, "memory": MEMORY, "disk": DISK}
FLAVOUR = re.compile(r"^(\d+)x(\d+)vcpus?/([^/]+)(?:/([^/]+))?$", re.IGNORECASE)
MODEL = re.compile(r"^(\d+)cpus?/([^/]+)(?:/([^/]+))?$", re.IGNORECASE)


class WhatIfError(ValueError):
    """A change that cannot be read or names nothing: ``option: reason``."""


@dataclass(frozen=True)
class Changes:
    overcommit: dict[str, float]
    host_model: tuple[int, int, int] | None  # cpus, memory MiB, disk MiB
    remove_hosts: tuple[str, ...]
    fail: tuple[str, ...]
    grow: dict[str, float]  # resource -> factor (1.2 for +20 %)
    add: tuple[tuple[int, int, int, int], ...]  # count, vcpus, memory MiB, disk MiB


def parse_changes(
    overcommit: str = "", host_model: str = "", remove_hosts: str = "", fail: str = "",
    grow: str = "", add: list[str] | None = None,
) -> Changes:  # fmt: skip
    return Changes(
        {KEYS[k]: v for k, v in _pairs("--overcommit", overcommit, _ratio).items()},
        _model(host_model) if host_model else None,
        tuple(p for p in remove_hosts.split(",") if p),
        tuple(p for p in fail.split(",") if p),
        {KEYS[k]: 1 + v / 100 for k, v in _pairs("--grow", grow, _percent).items()},
        tuple(_flavour(text) for text in add or []),
    )


def apply_changes(cluster: Cluster, changes: Changes) -> Cluster:
    """The snapshot as it would be; raises WhatIfError when a change names nothing."""
    hosts = list(cluster.hosts)
    if changes.overcommit or changes.host_model:
        hosts = [_resized(h, changes.overcommit, changes.host_model) for h in hosts]
    removed = _matching("--remove-hosts", hosts, changes.remove_hosts)
    hosts = [h for h in hosts if h.name not in removed]
    failed = _failing(hosts, changes.fail)
    hosts = [replace(h, state=HostState.DOWN) if h.name in failed else h for h in hosts]
    vms = [
        replace(v, host=None if v.host in removed else v.host, demand=_grown(v, changes.grow))
        for v in cluster.vms
    ]
    taken = {v.name for v in vms}
    for batch, (count, vcpus, memory, disk) in enumerate(changes.add, start=1):
        for i in range(1, count + 1):
            name = _free_name(f"whatif-{batch}-{i:04d}", taken)
            vms.append(VM(name, {VCPUS: vcpus, MEMORY: memory, DISK: disk}))
    policy = replace(cluster.policy, overcommit={**cluster.policy.overcommit, **changes.overcommit})
    return Cluster(cluster.name, tuple(hosts), tuple(vms), cluster.rules, policy, cluster.limits)


def _resized(host: Host, ratios: dict[str, float], model: tuple[int, int, int] | None) -> Host:
    """New ratios and/or a new model; a host keeps its own ratio where none is given."""
    ratio = {r: host.capacity.get(r, 0) / p for r, p in host.physical.items() if p} | ratios
    physical = dict(host.physical)
    if model is not None:
        physical.update(zip(CORE_RESOURCES, model, strict=True))
    capacity = allocatable(physical, ratio)
    return replace(host, physical=physical, capacity=capacity)


def _matching(option: str, hosts: list[Host], patterns: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for pattern in patterns:
        found = {h.name for h in hosts if fnmatch.fnmatchcase(h.name, pattern)}
        if not found:
            raise WhatIfError(f"{option}: no host matches '{pattern}'")
        names |= found
    return names


def _failing(hosts: list[Host], items: tuple[str, ...]) -> set[str]:
    names: set[str] = set()
    for item in items:
        label, sep, value = item.partition("=")
        if sep:
            found = {h.name for h in hosts if h.labels.get(label) == value}
            if not found:
                raise WhatIfError(f"--fail: no host has the label {item}")
            names |= found
        else:
            names |= _matching("--fail", hosts, (item,))
    return names


def _grown(vm: VM, factors: dict[str, float]) -> dict[str, int]:
    return {r: math.ceil(d * factors.get(r, 1.0) - 1e-9) for r, d in vm.demand.items()}


def _free_name(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "-new"
    taken.add(name)
    return name


def _pairs(option: str, text: str, number: Callable[[str, str], float]) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or key not in KEYS:
            raise WhatIfError(f"{option}: expected cpu=, memory= or disk=, got '{item}'")
        found[key] = number(option, value)
    return found


def _ratio(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise WhatIfError(f"{option}: '{text}' is not a number") from None
    if value <= 0:
        raise WhatIfError(f"{option}: a ratio must be positive, got {text}")
    return value


def _percent(option: str, text: str) -> float:
    try:
        value = float(text.strip().removesuffix("%"))
    except ValueError:
        raise WhatIfError(f"{option}: '{text}' is not a percentage") from None
    if value <= -100:
        raise WhatIfError(f"{option}: demand cannot shrink by {text}")
    return value


def _flavour(text: str) -> tuple[int, int, int, int]:
    match = FLAVOUR.match(text.strip())
    if not match:
        shape = "COUNTxVCPUSvcpu/MEMORY[/DISK] (300x4vcpu/16GiB)"
        raise WhatIfError(f"--add: expected {shape}, got '{text}'")
    count, vcpus = int(match.group(1)), int(match.group(2))
    if count == 0 or vcpus == 0:
        raise WhatIfError(f"--add: count and vCPUs must be positive in '{text}'")
    return count, vcpus, _size("--add", match.group(3)), _size("--add", match.group(4) or "0")


def _model(text: str) -> tuple[int, int, int]:
    match = MODEL.match(text.strip())
    if not match or int(match.group(1)) == 0:
        shape = "CPUScpu/MEMORY[/DISK] (128cpu/1TiB/8TiB)"
        raise WhatIfError(f"--host-model: expected {shape}, got '{text}'")
    memory, disk = match.group(2), match.group(3) or "0"
    return int(match.group(1)), _size("--host-model", memory), _size("--host-model", disk)


def _size(option: str, text: str) -> int:
    try:
        return parse_size_mib(text)
    except ValueError as exc:
        raise WhatIfError(f"{option}: {exc}") from None
