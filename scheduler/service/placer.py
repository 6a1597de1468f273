"""Where new VMs go, and the room held for them until their hosts report them.

A request places one VM or a batch, all or none, under the policy's rules and any rules the
request brings. The fast path ranks every host at once over the in-memory inventory: room
left (what the hosts report plus what earlier answers claimed), host state and liveness,
the host labels a VM asks for, best fit on a host already running VMs before an empty one,
as the engine's ``place`` goal ranks them. The hard rules that bind a VM are asked about the
ranked hosts only, best first; the VMs of a batch go largest first, each seeing the ones
before it. The exact path (``exact_placement``: CP-SAT over the whole snapshot, then the HA
admission check) decides what the fast path cannot: every placement under an HA policy,
since one VM more may break the reserve; a batch or rules the fast path could not fit one
VM at a time; and every placement when the service runs with ``--placement solver``.

Either way the decision and the claims in memory happen under the inventory's lock (the
exact path checks the room again there), so two answers never hand out the same room and
no host is given more than it has; a batch's claims go to the store in one transaction.
"""

from __future__ import annotations

import enum
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from scheduler.model import Cluster, HostState
from scheduler.placement.explain import amount_text, hosts_excluded
from scheduler.placement.ranking import best_fit, ranked
from scheduler.rules import Rule
from scheduler.scenario.policy import LivePolicy
from scheduler.service.exact_placement import NewVM, exact_placement
from scheduler.service.group_commit import GroupCommit
from scheduler.service.live_inventory import LiveInventory
from scheduler.service.records import Claim
from scheduler.service.store import Store

__all__ = ["NewVM", "PlacementPath", "PlacementRefused", "Placer"]


class PlacementPath(enum.StrEnum):
    FAST = "fast"  # vector ranking; the solver only under an HA policy
    SOLVER = "solver"  # CP-SAT for every placement (slow beyond a few hundred hosts)


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
        """One VM: choose a host and hold the room there, or refuse (``PlacementRefused``);
        the claim is on disk when this returns."""
        return self.place_all((vm,))[0]

    def place_all(self, vms: Sequence[NewVM], live: LivePolicy | None = None) -> list[Claim]:
        """Every VM of a batch, or none (``live``: the policy with a request's rules)."""
        claims, durable = self.choose(vms, live)
        self.kept(claims, durable.exception())
        return claims

    def kept(self, claims: list[Claim], failed: BaseException | None) -> None:
        """The claims' write is done: if it failed, the room they held in memory is free
        again and the placement is refused (503)."""
        if failed is not None:
            with self.inventory.lock:
                for claim in claims:
                    self.inventory.drop_claim(claim.vm)
            raise PlacementRefused(503, f"store: the placement could not be kept: {failed}")

    def choose(
        self, vms: Sequence[NewVM], live: LivePolicy | None = None
    ) -> tuple[list[Claim], Future[None]]:
        """Choose hosts and hold the room in memory at once; the future is done once the
        claims are on disk (``kept`` says what then)."""
        alone = len(vms) == 1 and live is None  # no batch, no rules of its own
        live = live or self.policy()
        batch = tuple(sorted(vms, key=lambda v: tuple(-a for a in self._demand(v))))
        found: list[Claim] | str
        if self.path is PlacementPath.SOLVER or live.policy.ha.required:
            found = self._exact(batch, live)
        else:
            with self.inventory.lock:
                found = self._fast_all(batch, live, self.clock())
            if isinstance(found, str) and not alone:
                exact = self._exact(batch, live)  # together they may fit where greed did not
                found = exact if not isinstance(exact, str) else found
        if isinstance(found, str):  # refused: maybe a standby host can help, next time
            switched_on = self.power_on(f"no room to place {', '.join(v.name for v in batch)}")
            if switched_on is not None:
                found += f"; powering {switched_on} on: retry once it reports"
            raise PlacementRefused(409, f"no host: {found}")
        claims = found
        return claims, self.writes.submit(lambda: self.store.add_claims(claims))

    def _new_names(self, vms: Sequence[NewVM]) -> None:
        self.inventory.expire(self.clock())
        for vm in vms:
            if self.inventory.exists(vm.name):
                raise PlacementRefused(409, f"name: VM '{vm.name}' already exists")

    def _fast_all(self, vms: Sequence[NewVM], live: LivePolicy, now: float) -> list[Claim] | str:
        """Each VM in turn, its claim held before the next is chosen (so rules among them
        see it); on the first that finds no host, the claims made are undone."""
        self._new_names(vms)
        claims: list[Claim] = []
        for vm in vms:
            host, why = self._fast(vm, live, now)
            if host is None:
                for claim in claims:
                    self.inventory.drop_claim(claim.vm)
                return why
            claims.append(self._hold(vm, host, now))
        return claims

    def _exact(self, vms: Sequence[NewVM], live: LivePolicy) -> list[Claim] | str:
        # One solve at a time, outside the inventory's lock: reports and the rest go on
        # meanwhile, and the room is checked again before it is claimed.
        with self._solving:
            self._new_names(vms)
            hosts, why = exact_placement(self.snapshot(), tuple(vms), live, self.solver_workers)
            if hosts is None:
                return why
            with self.inventory.lock:
                self._new_names(vms)
                needed: dict[str, np.ndarray] = {}
                for vm in vms:
                    needed[hosts[vm.name]] = needed.get(hosts[vm.name], 0) + self._demand(vm)
                free, index = self.inventory.free(), self.inventory.index
                for host, amount in needed.items():
                    if not (free[index[host]] >= amount).all():
                        # The snapshot counts a migrating VM once, the host holds it twice;
                        # or a report came during the solve.
                        return f"{host} has no room for the VMs chosen for it any more"
                now = self.clock()
                return [self._hold(vm, hosts[vm.name], now) for vm in vms]

    def _hold(self, vm: NewVM, host: str, now: float) -> Claim:
        """The claim, held in memory at once (under the inventory's lock): never given twice."""
        claim = Claim(vm.name, host, dict(vm.demand), now, now + self.claim_ttl_s, dict(vm.labels))
        self.inventory.add_claim(claim)
        return claim

    def release(self, vm: str) -> bool:
        """The VM will not be created: its room is free again."""
        with self.inventory.lock:
            held = self.inventory.drop_claim(vm)
        return bool(self.writes.run(lambda: self.store.drop_claims([vm]))) or held

    # -- the fast path -------------------------------------------------------------------

    def _demand(self, vm: NewVM) -> np.ndarray:
        """Over the inventory's columns: a resource no host reports gets one, of zeros."""
        return self.inventory.vector(vm.demand)

    def _fast(self, vm: NewVM, live: LivePolicy, now: float) -> tuple[str | None, str]:
        inventory = self.inventory
        demand, free = self._demand(vm), inventory.free()
        scale = np.maximum(inventory.capacity.max(axis=0, initial=0), 1).astype(np.float64)
        accepting = inventory.accepting(now)
        if vm.host_labels:
            accepting = accepting & inventory.hosts_labelled(vm.host_labels)
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
        return sorted(self.inventory.labels.matching(selector))

    def _why_not(
        self, vm: NewVM, rules: list[Rule], demand: np.ndarray, free: np.ndarray,
        accepting: np.ndarray,
    ) -> str:  # fmt: skip
        """Every host excluded, grouped by the reason, in the words of ``why_not_placed``."""
        inventory, resources = self.inventory, self.inventory.resources
        reasons: dict[str, list[str]] = defaultdict(list)
        states = inventory.states()
        labelled = inventory.hosts_labelled(vm.host_labels)
        small = inventory.capacity < demand
        short = free < demand
        for i, host in enumerate(inventory.hosts):
            if inventory.report_of(host) is None:
                continue
            if vm.host_labels and not labelled[i]:
                wanted = ", ".join(f"{k}={v}" for k, v in sorted(vm.host_labels.items()))
                why = f"lack the labels {wanted}"
            elif not accepting[i]:
                state = states.get(host, HostState.UP)
                why = f"are {'suspect' if state is HostState.UP else state.value}"
            elif small[i].any():
                why = "are too small in " + ", ".join(np.asarray(resources)[small[i]])
            elif short[i].any():
                why = "lack free " + ", ".join(np.asarray(resources)[short[i]])
            else:
                why = "excluded by " + "; ".join(r.label for r in rules)
            reasons[why].append(host)
        need = ", ".join(amount_text(r, a) for r, a in vm.demand.items() if a)
        return f"{vm.name} (needs {need}): " + (hosts_excluded(reasons) or "no host is usable")
