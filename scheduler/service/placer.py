"""Where a new VM goes, and the room held for it until its host reports it.

The fast path ranks every host at once over the in-memory inventory: room left (what the
hosts report plus what earlier answers claimed), host state and liveness, best fit on a host
already running VMs before an empty one, as the engine's ``place`` goal ranks them. The
policy's rules that bind the new VM are asked about the ranked hosts only, best first. The
exact path (CP-SAT over the whole snapshot, then the HA admission check) decides what the
fast path cannot: every placement under an HA policy, since one VM more may break the
reserve, and every placement when the service runs with ``--placement solver``.

Either way the decision, the claim in the store and the claim in memory happen under the
inventory's lock, so two answers never hand out the same room; and a host is only chosen
if the in-memory room holds the VM, so no host is given more than it has.
"""

from __future__ import annotations

import enum
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from scheduler.ha.reserve import admit_within_reserve
from scheduler.model import VM, Cluster, Goal, HostState
from scheduler.placement.explain import amount_text, some_names, why_not_placed
from scheduler.placement.ranking import best_fit, ranked
from scheduler.rules import Rule
from scheduler.scenario.policy import LivePolicy
from scheduler.service.group_commit import GroupCommit
from scheduler.service.live_inventory import LiveInventory
from scheduler.service.records import Claim
from scheduler.service.store import Store
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide


class PlacementPath(enum.StrEnum):
    FAST = "fast"  # vector ranking; the solver only under an HA policy
    SOLVER = "solver"  # CP-SAT for every placement (slow beyond a few hundred hosts)


@dataclass(frozen=True)
class NewVM:
    name: str
    demand: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)
    priority: int = 0


class PlacementRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Placer:
    inventory: LiveInventory
    store: Store
    writes: GroupCommit
    policy: Callable[[], LivePolicy]
    snapshot: Callable[[], Cluster]
    clock: Callable[[], float]
    power_on: Callable[[str], str | None]
    claim_ttl_s: float = 900.0
    path: PlacementPath = PlacementPath.FAST
    solver_workers: int = 0
    _solving: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def needs_solver(self) -> bool:
        """Whether the next placement takes the exact path (seconds, not milliseconds)."""
        return self.path is PlacementPath.SOLVER or self.policy().policy.ha.required

    def place(self, vm: NewVM) -> Claim:
        """Choose a host and hold the room there, or refuse (``PlacementRefused``); the
        claim is on disk when this returns."""
        claim, durable = self.choose(vm)
        self.kept(claim, durable.exception())
        return claim

    def kept(self, claim: Claim, failed: BaseException | None) -> None:
        """The claim's write is done: if it failed, the room it held in memory is free
        again and the placement is refused (503)."""
        if failed is not None:
            self.inventory.drop_claim(claim.vm)
            raise PlacementRefused(503, f"store: the placement could not be kept: {failed}")

    def choose(self, vm: NewVM) -> tuple[Claim, Future[None]]:
        """Choose a host and hold the room in memory at once; the future is done once the
        claim is on disk (``kept`` says what then)."""
        live = self.policy()
        if self.path is PlacementPath.SOLVER or live.policy.ha.required:
            # One solve at a time, outside the inventory's lock: reports and the rest go on
            # meanwhile, and the room is checked again before it is claimed.
            with self._solving:
                self._new_name(vm)
                host, why = self._exact(vm, live)
                found = self._claim(vm, host, why)
        else:
            with self.inventory.lock:
                self._new_name(vm)
                host, why = self._fast(vm, live, self.clock())
                found = self._claim(vm, host, why)
        if isinstance(found, str):  # refused: maybe a standby host can help, next time
            switched_on = self.power_on(f"no room to place {vm.name}")
            if switched_on is not None:
                found += f"; powering {switched_on} on: retry once it reports"
            raise PlacementRefused(409, f"no host: {found}")
        return found, self.writes.submit(lambda: self.store.add_claim(found))

    def _new_name(self, vm: NewVM) -> None:
        self.inventory.expire(self.clock())
        if self.inventory.exists(vm.name):
            raise PlacementRefused(409, f"name: VM '{vm.name}' already exists")

    def _claim(self, vm: NewVM, host: str | None, why: str) -> Claim | str:
        """Hold the room on ``host`` (in memory) if it is still there; else why not."""
        inventory = self.inventory
        with inventory.lock:
            self._new_name(vm)
            if host is None:
                return why
            if not (inventory.free()[inventory.index[host]] >= self._demand(vm)).all():
                # The snapshot counts a migrating VM once, the host holds it twice; or a
                # report came during the solve.
                return f"{vm.name}: {host} has no room for it any more"
            now = self.clock()
            claim = Claim(vm.name, host, dict(vm.demand), now, now + self.claim_ttl_s)
            inventory.add_claim(claim)  # held before the lock is released: never given twice
            return claim

    def release(self, vm: str) -> bool:
        """The VM will not be created: its room is free again."""
        with self.inventory.lock:
            held = self.inventory.drop_claim(vm)
        return bool(self.writes.run(lambda: self.store.drop_claims([vm]))) or held

    # -- the fast path -------------------------------------------------------------------

    def _demand(self, vm: NewVM) -> np.ndarray:
        return np.array([vm.demand.get(r, 0) for r in self.inventory.resources], dtype=np.int64)

    def _fast(self, vm: NewVM, live: LivePolicy, now: float) -> tuple[str | None, str]:
        inventory = self.inventory
        demand, free = self._demand(vm), inventory.free()
        scale = np.maximum(inventory.capacity.max(axis=0, initial=0), 1).astype(np.float64)
        accepting = inventory.accepting(now)
        busy = inventory.count > 0
        rules = [
            r for r in live.rules_binding(vm.name, vm.labels, inventory.exists, self._labelled)
            if not r.soft
        ]  # fmt: skip
        for allowed in (accepting & busy, accepting & ~busy):
            if not rules:
                i = best_fit(free, demand, allowed, scale)
                if i is not None:
                    return inventory.hosts[i], ""
                continue
            hosts = inventory.hosts_cluster()
            for i in ranked(free, demand, allowed, scale).tolist():
                host = inventory.hosts[i]
                if all(rule.admits(hosts, vm.name, host, inventory) for rule in rules):
                    return host, ""
        return None, self._why_not(vm, rules, demand, free, accepting)

    def _labelled(self, selector: Mapping[str, str]) -> list[str]:
        # Reports carry no VM labels yet: a selector matches no VM that exists.
        return []

    def _why_not(
        self, vm: NewVM, rules: list[Rule], demand: np.ndarray, free: np.ndarray,
        accepting: np.ndarray,
    ) -> str:  # fmt: skip
        """Every host excluded, grouped by the reason, in the words of ``why_not_placed``."""
        inventory, resources = self.inventory, self.inventory.resources
        reasons: dict[str, list[str]] = defaultdict(list)
        states = inventory.states()
        small = inventory.capacity < demand
        short = free < demand
        for i, host in enumerate(inventory.hosts):
            if inventory.report_of(host) is None:
                continue
            if not accepting[i]:
                state = states.get(host, HostState.UP)
                why = f"are {'suspect' if state is HostState.UP else state.value}"
            elif small[i].any():
                why = "are too small in " + ", ".join(np.asarray(resources)[small[i]])
            elif short[i].any():
                why = "lack free " + ", ".join(np.asarray(resources)[short[i]])
            else:
                why = "excluded by " + "; ".join(r.label for r in rules)
            reasons[why].append(host)
        parts = [
            f"{len(hosts)} host{'s' if len(hosts) > 1 else ''} {why} ({some_names(hosts)})"
            for why, hosts in sorted(reasons.items(), key=lambda kv: -len(kv[1]))
        ]
        need = ", ".join(amount_text(r, a) for r, a in vm.demand.items() if a)
        return f"{vm.name} (needs {need}): " + ("; ".join(parts) or "no host is usable")

    # -- the exact path ------------------------------------------------------------------

    def _exact(self, vm: NewVM, live: LivePolicy) -> tuple[str | None, str]:
        cluster = self.snapshot()
        new = VM(vm.name, dict(vm.demand), priority=vm.priority)
        asking = cluster.replace_vms([*cluster.vms, new])
        options = SearchOptions(SolverSettings(10.0, self.solver_workers))
        decision = decide(asking, Goal.PLACE, (), options)
        placement, refused = admit_within_reserve(
            asking, {vm.name: decision.placement.get(vm.name)}
        )
        host = placement.get(vm.name)
        if host is None:
            return None, refused.get(vm.name) or why_not_placed(asking, decision.placement, vm.name)
        return host, ""
