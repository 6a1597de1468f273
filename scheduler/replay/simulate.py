"""Replay a usage trace on a set of hosts under a consolidation policy, step by step.

Each step: VMs that left are removed, VMs that arrive are placed (by their reservation,
first fit, the way a static allocator books them), at decision steps the policy may move VMs,
then the step is measured with the usage the trace records. Hosts with no VM are off and
draw nothing. A decision sees only the steps before it: its CPU forecast for a VM is the
peak of the last ``decide_every`` steps (the reservation for a VM with no history yet).

Figures per step: active hosts, power, overloaded hosts (CPU use above ``overload_at`` of the
host), saturated hosts (demand above the whole host: the VMs there do not get the CPU they
ask for, the SLA-style violation), unserved CPU, migrations and memory moved.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scheduler.replay.hosts import HostModel
from scheduler.replay.traces import Trace

Progress = Callable[[str, int, int], None]  # (policy, step, steps)


@dataclass(frozen=True)
class ReplaySettings:
    decide_every: int = 12  # steps between decisions (12 x 300 s: hourly)
    target_load: float = 0.8  # CPU share of a host that consolidation packs up to
    overload_at: float = 0.9  # CPU share of a host above which it counts as overloaded
    migration_gbps: float = 1.0  # network for live migration: sets the migration time


@dataclass
class Fleet:
    """What a policy sees at a decision: hosts, VMs alive, where they run, the forecast."""

    trace: Trace
    hosts: list[HostModel]
    settings: ReplaySettings
    step: int
    host_of: np.ndarray  # per VM: host index, -1 when not running
    forecast_mhz: np.ndarray  # per VM: the CPU expected in the coming steps
    cpu_mhz: np.ndarray = field(init=False)  # per host
    memory_mib: np.ndarray = field(init=False)  # per host

    def __post_init__(self) -> None:
        self.cpu_mhz = np.array([h.cpu_mhz for h in self.hosts], dtype=float)
        self.memory_mib = np.array([h.memory_mib for h in self.hosts], dtype=np.int64)

    @property
    def running(self) -> np.ndarray:
        return np.flatnonzero(self.host_of >= 0)

    def busy(self, host_of: np.ndarray | None = None) -> np.ndarray:
        """Per host: does it run a VM (and so draw power)?"""
        return self.loads(np.ones(len(self.host_of)), host_of) > 0

    def loads(self, amounts: np.ndarray, host_of: np.ndarray | None = None) -> np.ndarray:
        where = self.host_of if host_of is None else host_of
        placed = where >= 0
        return np.bincount(where[placed], weights=amounts[placed], minlength=len(self.hosts))


class ReplayPolicy(Protocol):
    name: str

    def decide(self, fleet: Fleet) -> np.ndarray:
        """The new host of every VM (the same array shape as ``fleet.host_of``)."""
        ...


@dataclass
class ReplayResult:
    policy: str
    trace: str
    interval_s: int
    hosts: int
    active_hosts: list[int] = field(default_factory=list)
    power_w: list[float] = field(default_factory=list)
    overloaded_hosts: list[int] = field(default_factory=list)
    saturated_hosts: list[int] = field(default_factory=list)
    migrations: list[int] = field(default_factory=list)
    memory_moved_mib: list[int] = field(default_factory=list)
    overload_incidents: int = 0
    unserved_mhz_s: float = 0.0
    demanded_mhz_s: float = 0.0
    migration_s: float = 0.0
    decisions: int = 0
    decision_s: float = 0.0
    unplaced_vm_steps: int = 0
    first_loads: list[float] = field(default_factory=list)  # CPU share per active host
    last_loads: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        hours = self.interval_s / 3600
        active_h = sum(self.active_hosts) * hours
        return {
            "policy": self.policy,
            "active_host_hours": round(active_h, 2),
            "mean_active_hosts": round(float(np.mean(self.active_hosts or [0])), 1),
            "energy_kwh": round(sum(self.power_w) * hours / 1000, 2),
            "migrations": sum(self.migrations),
            "memory_moved_gib": round(sum(self.memory_moved_mib) / 1024, 1),
            "migration_hours": round(self.migration_s / 3600, 2),
            "overload_host_hours": round(sum(self.overloaded_hosts) * hours, 2),
            "overload_incidents": self.overload_incidents,
            "sla_violation_host_hours": round(sum(self.saturated_hosts) * hours, 2),
            "sla_violation_share": round(sum(self.saturated_hosts) * hours / active_h, 5)
            if active_h
            else 0.0,
            "unserved_cpu_share": round(self.unserved_mhz_s / self.demanded_mhz_s, 6)
            if self.demanded_mhz_s
            else 0.0,
            "unplaced_vm_hours": round(self.unplaced_vm_steps * hours, 2),
            "decisions": self.decisions,
            "decision_seconds": round(self.decision_s, 2),
        }


def replay(
    trace: Trace,
    hosts: list[HostModel],
    policy: ReplayPolicy,
    settings: ReplaySettings | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    settings = settings or ReplaySettings()
    host_of = np.full(trace.vm_count, -1, dtype=np.int64)
    result = ReplayResult(policy.name, trace.name, trace.interval_s, len(hosts))
    fleet = Fleet(trace, hosts, settings, 0, host_of, trace.cpu_mhz.astype(float))
    watts = np.array([h.watts for h in hosts])
    was_overloaded = np.zeros(len(hosts), dtype=bool)
    for step in range(trace.steps):
        alive = trace.alive(step)
        host_of[~alive] = -1
        fleet.step = step
        arriving = np.flatnonzero(alive & (host_of < 0))
        if arriving.size:
            place_reserved(fleet, arriving)
        moved = np.zeros(trace.vm_count, dtype=bool)
        if step > 0 and step % settings.decide_every == 0:
            fleet.forecast_mhz = forecast(trace, step, settings.decide_every)
            began = time.monotonic()
            target = policy.decide(fleet)
            result.decision_s += time.monotonic() - began
            result.decisions += 1
            moved = (target != host_of) & (host_of >= 0) & (target >= 0)
            host_of[moved] = target[moved]
        was_overloaded = _measure(fleet, step, alive, moved, watts, was_overloaded, result)
        if progress is not None:
            progress(policy.name, step + 1, trace.steps)
    return result


def _measure(
    fleet: Fleet,
    step: int,
    alive: np.ndarray,
    moved: np.ndarray,
    watts: np.ndarray,
    was_overloaded: np.ndarray,
    result: ReplayResult,
) -> np.ndarray:
    trace, settings, host_of = fleet.trace, fleet.settings, fleet.host_of
    usage = trace.usage_mhz[:, step]
    demand = fleet.loads(usage)
    active = fleet.busy()
    share = demand / fleet.cpu_mhz
    overloaded: np.ndarray = active & (share > settings.overload_at)
    saturated = active & (share > 1.0)
    result.active_hosts.append(int(active.sum()))
    result.power_w.append(float(power(watts[active], share[active]).sum()))
    result.overloaded_hosts.append(int(overloaded.sum()))
    result.saturated_hosts.append(int(saturated.sum()))
    result.overload_incidents += int((overloaded & ~was_overloaded).sum())
    result.unserved_mhz_s += float(np.maximum(demand - fleet.cpu_mhz, 0).sum()) * trace.interval_s
    result.demanded_mhz_s += float(demand.sum()) * trace.interval_s
    moved_mib = int(trace.memory_mib[moved].sum())
    result.migrations.append(int(moved.sum()))
    result.memory_moved_mib.append(moved_mib)
    result.migration_s += moved_mib * 2**20 * 8 / (settings.migration_gbps * 1e9)
    result.unplaced_vm_steps += int((alive & (host_of < 0)).sum())
    loads = [round(float(s), 4) for s in share[active]]
    if step == 0:
        result.first_loads = loads
    result.last_loads = loads
    return overloaded


def power(watts: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Watts of each host (rows of 11 SPECpower points) at its CPU share, linear between."""
    load = np.clip(share, 0.0, 1.0) * 10
    low = np.minimum(load.astype(np.int64), 9)
    rows = np.arange(len(low))
    drawn: np.ndarray = watts[rows, low] + (watts[rows, low + 1] - watts[rows, low]) * (load - low)
    return drawn


def forecast(trace: Trace, step: int, window: int) -> np.ndarray:
    """Per VM: the peak CPU of the last ``window`` steps before ``step``, or its reservation
    when it has run for none of them."""
    first = max(0, step - window)
    if step == first:
        return trace.cpu_mhz.astype(float)
    seen = trace.usage_mhz[:, first:step].copy()
    ran = np.arange(first, step)[None, :] >= trace.start[:, None]
    seen[~ran] = -1.0
    peak = seen.max(axis=1)
    expected: np.ndarray = np.where(peak >= 0, peak, trace.cpu_mhz.astype(float))
    return expected


def place_reserved(fleet: Fleet, vms: np.ndarray) -> None:
    """First fit by reservation (CPU and memory booked in full), largest memory first, on
    hosts already on before hosts that are off."""
    trace, host_of = fleet.trace, fleet.host_of
    cpu_free = fleet.cpu_mhz - fleet.loads(trace.cpu_mhz.astype(float))
    mem_free = fleet.memory_mib - fleet.loads(trace.memory_mib.astype(float)).astype(np.int64)
    on = fleet.busy()
    for vm in sorted(vms, key=lambda v: -int(trace.memory_mib[v])):
        fits = (cpu_free >= trace.cpu_mhz[vm]) & (mem_free >= trace.memory_mib[vm])
        candidates = np.flatnonzero(fits & on)
        if not candidates.size:
            candidates = np.flatnonzero(fits)
        if not candidates.size:
            continue  # no host can take it: counted as unplaced while it waits
        host = int(candidates[0])
        host_of[vm] = host
        cpu_free[host] -= trace.cpu_mhz[vm]
        mem_free[host] -= trace.memory_mib[vm]
        on[host] = True
