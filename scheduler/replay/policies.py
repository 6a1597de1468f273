"""Consolidation policies a replay can compare.

- ``never``: VMs stay where the reservation-based placement put them (the no-consolidation
  baseline).
- ``threshold``: the classic static-threshold heuristic (Beloglazov & Buyya's THR-MMT with
  power-aware best fit): VMs leave hosts forecast above the target load, smallest memory
  first; hosts below ``lower`` are emptied when all their VMs fit elsewhere; each VM goes to
  the host whose power rises least.
- ``vmpack``: the production engine's consolidation (CP-SAT) at every decision, on a snapshot
  whose hosts offer ``target_load`` of their CPU and VMs ask for their forecast; at most
  ``move_share`` of the VMs move per decision, and a decision is applied only when it frees
  ``min_hosts_saved`` hosts or relieves an overload (the autopilot's hysteresis).
- ``vmpack-triggered``: the same, decided only when a threshold is crossed: a host forecast
  above the target, or one below ``lower`` of both its CPU and its memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from scheduler.engine import decide_plan
from scheduler.model import MEMORY, VM, Cluster, Goal, Host, Limits, Policy
from scheduler.planning.check import check_plan
from scheduler.replay.simulate import Fleet, power
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions

CPU = "cpu_mhz"
POLICY_NAMES = ("never", "threshold", "vmpack", "vmpack-triggered")


class Never:
    name = "never"

    def decide(self, fleet: Fleet) -> np.ndarray:
        return fleet.host_of.copy()


@dataclass
class Threshold:
    lower: float = 0.3
    name: str = "threshold"

    def decide(self, fleet: Fleet) -> np.ndarray:
        state = _Loads(fleet)
        for host in map(int, np.flatnonzero(state.cpu > state.cpu_cap)):
            on_host = sorted(state.vms_on(host), key=lambda v: int(state.memory_of[v]))
            while on_host and state.cpu[host] > state.cpu_cap[host]:
                vm = on_host.pop(0)
                to = state.best_host(vm, exclude={host})
                if to is None:
                    break
                state.move(vm, to)
        share = state.cpu / fleet.cpu_mhz
        closed: set[int] = set()
        underused = [int(h) for h in np.flatnonzero(state.active() & (share < self.lower))]
        for host in sorted(underused, key=lambda h: float(share[h])):
            if host in state.received:
                continue
            undo = state.target.copy(), state.cpu.copy(), state.memory.copy(), set(state.received)
            exclude = closed | {host}
            for vm in sorted(state.vms_on(host), key=lambda v: -state.forecast[v]):
                to = state.best_host(vm, exclude=exclude, only_on=True)
                if to is None:
                    state.target, state.cpu, state.memory, state.received = undo
                    break
                state.move(vm, to)
            else:
                closed.add(host)
        return state.target


class _Loads:
    """Forecast CPU and memory per host while a heuristic moves VMs around."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.target = fleet.host_of.copy()
        self.forecast = fleet.forecast_mhz
        self.memory_of = fleet.trace.memory_mib
        self.cpu = fleet.loads(self.forecast)
        self.memory = fleet.loads(self.memory_of.astype(float))
        self.cpu_cap = fleet.cpu_mhz * fleet.settings.target_load
        self.watts = np.array([h.watts for h in fleet.hosts])
        self.received: set[int] = set()

    def active(self) -> np.ndarray:
        return self.fleet.busy(self.target)

    def vms_on(self, host: int) -> list[int]:
        return [int(v) for v in np.flatnonzero(self.target == host)]

    def best_host(self, vm: int, exclude: set[int], only_on: bool = False) -> int | None:
        cpu_after = self.cpu + self.forecast[vm]
        fits = (cpu_after <= self.cpu_cap) & (
            self.memory + self.memory_of[vm] <= self.fleet.memory_mib
        )
        active = self.active()
        if only_on:
            fits &= active
        fits[list(exclude)] = False
        candidates = np.flatnonzero(fits)
        if not candidates.size:
            return None
        watts, cap = self.watts[candidates], self.fleet.cpu_mhz[candidates]
        before = np.where(active[candidates], power(watts, self.cpu[candidates] / cap), 0.0)
        rise = power(watts, cpu_after[candidates] / cap) - before
        return int(candidates[int(np.argmin(rise))])

    def move(self, vm: int, to: int) -> None:
        source = int(self.target[vm])
        self.cpu[source] -= self.forecast[vm]
        self.memory[source] -= self.memory_of[vm]
        self.cpu[to] += self.forecast[vm]
        self.memory[to] += self.memory_of[vm]
        self.target[vm] = to
        self.received.add(to)


@dataclass
class Vmpack:
    time_limit_s: float = 10.0
    workers: int = 0
    seed: int = 0
    max_moves: int | None = None  # per decision; None: ``move_share`` of the running VMs
    move_share: float = 0.1
    triggered: bool = False
    min_hosts_saved: int = 1
    lower: float = 0.3  # triggered: a host below this share of CPU and memory is underused
    check: bool = False  # replay every plan through the solver-free checker
    name: str = "vmpack"

    def __post_init__(self) -> None:
        if self.triggered and self.name == "vmpack":
            self.name = "vmpack-triggered"

    def decide(self, fleet: Fleet) -> np.ndarray:
        budget = self.max_moves
        if budget is None:
            budget = max(1, math.ceil(self.move_share * len(fleet.running)))
        target = fleet.host_of.copy()
        overloaded = bool((fleet.loads(fleet.forecast_mhz) > _cpu_capacity(fleet)).any())
        if self.triggered and not overloaded and not self._underused(fleet):
            return target
        cluster = snapshot(fleet, budget)
        settings = SolverSettings(self.time_limit_s, self.workers, self.seed)
        outcome = decide_plan(cluster, Goal.CONSOLIDATE, (), SearchOptions(settings))
        if self.check and (problems := check_plan(outcome.cluster, outcome.plan)):
            raise AssertionError(f"step {fleet.step}: the checker refused the plan: {problems[0]}")
        freed = outcome.before.active_hosts - outcome.after.active_hosts
        if not overloaded and freed < self.min_hosts_saved:
            return target  # not worth the migrations: the same hysteresis as the autopilot
        for vm, host in outcome.decision.placement.items():
            if host is not None:
                target[int(vm[2:])] = int(host[2:])
        return target

    def _underused(self, fleet: Fleet) -> bool:
        """Some active host is forecast below ``lower`` of its CPU and of its memory."""
        busy = fleet.busy()
        cpu = fleet.loads(fleet.forecast_mhz) / fleet.cpu_mhz
        memory = fleet.loads(fleet.trace.memory_mib.astype(float)) / fleet.memory_mib
        return bool((busy & (cpu < self.lower) & (memory < self.lower)).any())


def _cpu_capacity(fleet: Fleet) -> np.ndarray:
    """CPU per host as the engine is told it: ``target_load`` of the host, whole MHz."""
    return np.floor(fleet.cpu_mhz * fleet.settings.target_load)


def snapshot(fleet: Fleet, max_moves: int | None = None) -> Cluster:
    """The fleet as the engine sees it: hosts offer ``target_load`` of their CPU, VMs ask for
    their forecast (names ``h-<index>`` and ``v-<index>``)."""
    share = fleet.settings.target_load
    hosts = tuple(
        Host(
            f"h-{i}",
            {CPU: m.cpu_mhz, MEMORY: m.memory_mib},
            {CPU: int(m.cpu_mhz * share), MEMORY: m.memory_mib},
            {"model": m.name},
        )
        for i, m in enumerate(fleet.hosts)
    )
    trace = fleet.trace
    vms = tuple(
        VM(
            f"v-{i}",
            {CPU: math.ceil(fleet.forecast_mhz[i]), MEMORY: int(trace.memory_mib[i])},
            f"h-{fleet.host_of[i]}",
        )
        for i in fleet.running
    )
    limits = Limits(max_moves=max_moves)
    return Cluster(f"{trace.name}@{fleet.step}", hosts, vms, (), Policy(overcommit={}), limits)


def make_policy(
    name: str,
    time_limit_s: float = 10.0,
    workers: int = 0,
    check: bool = False,
    max_moves: int | None = None,
    lower: float = 0.3,
    min_hosts_saved: int = 1,
) -> Never | Threshold | Vmpack:
    if name == "never":
        return Never()
    if name == "threshold":
        return Threshold(lower)
    if name in ("vmpack", "vmpack-triggered"):
        return Vmpack(
            time_limit_s,
            workers,
            0,
            max_moves,
            triggered=name == "vmpack-triggered",
            min_hosts_saved=min_hosts_saved,
            lower=lower,
            check=check,
        )
    raise ValueError(f"--policies: unknown policy '{name}' (known: {', '.join(POLICY_NAMES)})")
