"""The cluster as the agents last reported it, kept in memory report by report.

Each report replaces what its host held before. The store keeps the same facts durably and
a restarted scheduler loads them back; every decision reads them from here, with no query
and no parse:

- per host, two vectors over the resources: the room it may give (its physical size times
  the policy's allocation ratios) and the room it holds: every domain that holds resources,
  as the host reports it, plus the claims of placements it has not reported yet. A VM that
  migrates is held on both hosts, as it is in memory, so a placement never counts on room
  a migration is using;
- where each VM is (the hosts that report it, the host of its claim), for the rules;
- when each host last reported, and the state an operator chose, for liveness.

Everything changes under ``lock``; ``version`` counts the changes, so the snapshot the
planner reads is rebuilt only after one.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

import numpy as np

from agents.report import HostReport
from scheduler.model import CORE_RESOURCES, Cluster, Host, HostState, allocatable
from scheduler.service.label_index import LabelIndex
from scheduler.service.liveness import Heartbeat
from scheduler.service.records import Claim


class HostIdentityConflict(Exception):
    """A report under a host name that another libvirt host (another host UUID) reports
    under: two agents configured with one ``--host``, or a machine replaced. Never merged."""

    def __init__(self, host: str, known: str, reported: str) -> None:
        super().__init__(
            f"host: {host} is reported by libvirt host {known}; this report comes from "
            f"{reported or 'a libvirt host with no UUID'} (if {host} was replaced: "
            f"vmpack hosts forget-identity {host})"
        )


class LiveInventory:
    def __init__(
        self, heartbeat: Heartbeat, started_at: float, overcommit: Mapping[str, float]
    ) -> None:
        self.lock = threading.RLock()
        self.version = 0
        self._heartbeat, self._started_at = heartbeat, started_at
        self._overcommit = dict(overcommit)
        self.hosts: list[str] = []
        self.index: dict[str, int] = {}
        # Columns of the vectors: CPU, memory, disk, then each countable resource (a GPU
        # model, a licence) from when a report, a claim or a request first names it.
        self.resources: list[str] = list(CORE_RESOURCES)
        self.column = {r: i for i, r in enumerate(self.resources)}
        width = len(self.resources)
        self._physical = np.zeros((0, width), dtype=np.int64)
        self._capacity = np.zeros((0, width), dtype=np.int64)
        self._held = np.zeros((0, width), dtype=np.int64)
        self._claimed = np.zeros((0, width), dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._reported_at = np.zeros(0, dtype=np.float64)
        self._operator_up = np.zeros(0, dtype=bool)
        self._reports: dict[str, tuple[HostReport, float]] = {}
        self._states: dict[str, HostState] = {}
        self._where: dict[str, set[str]] = {}  # VM -> hosts whose report holds it
        self._residents: dict[str, set[str]] = {}  # host -> VMs it holds or has claims for
        self.claims: dict[str, Claim] = {}
        self.labels = LabelIndex()  # of the VMs reported and claimed, for rule selectors
        self._expiry: list[tuple[float, str]] = []  # (expires_at, VM), a heap
        self._hosts_cluster: Cluster | None = None

    # -- filling it ----------------------------------------------------------------------

    def load(
        self,
        reports: Iterable[tuple[HostReport, float]],
        states: Mapping[str, HostState],
        claims: Iterable[Claim],
    ) -> list[str]:
        """What the store kept, at start. Returns the claims that a report already ended."""
        with self.lock:
            for host, state in states.items():
                self.set_state(host, state)
            for report, at in reports:
                self.apply_report(report, at)
            ended = []
            for claim in claims:
                if claim.vm in self._residents.get(claim.host, ()):
                    ended.append(claim.vm)
                else:
                    self.add_claim(claim)
            return ended

    def _row(self, host: str) -> int:
        i = self.index.get(host)
        if i is not None:
            return i
        i = len(self.hosts)
        if i == len(self.count):  # full: double every array at once (amortised O(1) a host)
            self._grow(max(16, 2 * i))
        self.hosts.append(host)
        self.index[host] = i
        self.operator_up[i] = self._states.get(host, HostState.UP) is HostState.UP
        self._residents[host] = set()
        self._hosts_cluster = None
        return i

    def _grow(self, rows: int) -> None:
        def wider(array: np.ndarray, fill: object) -> np.ndarray:
            bigger = np.full((rows, *array.shape[1:]), fill, dtype=array.dtype)
            bigger[: len(array)] = array
            return bigger

        self._physical, self._capacity = wider(self._physical, 0), wider(self._capacity, 0)
        self._held, self._claimed = wider(self._held, 0), wider(self._claimed, 0)
        self._count, self._reported_at = wider(self._count, 0), wider(self._reported_at, -np.inf)
        self._operator_up = wider(self._operator_up, False)

    def vector(self, amounts: Mapping[str, int]) -> np.ndarray:
        """``amounts`` over the columns, a new column for a resource not seen before."""
        with self.lock:
            self._add_columns(amounts)
            found = np.zeros(len(self.resources), dtype=np.int64)
            for resource, amount in amounts.items():
                found[self.column[resource]] = amount
            return found

    def _add_columns(self, names: Iterable[str]) -> None:
        new = sorted(set(names) - self.column.keys())
        if not new:
            return
        for name in new:
            self.column[name] = len(self.resources)
            self.resources.append(name)

        def wider(array: np.ndarray) -> np.ndarray:
            return np.hstack([array, np.zeros((len(array), len(new)), dtype=array.dtype)])

        self._physical, self._capacity = wider(self._physical), wider(self._capacity)
        self._held, self._claimed = wider(self._held), wider(self._claimed)
        self._hosts_cluster = None

    # Views of the rows in use (hosts in the order first seen).
    @property
    def capacity(self) -> np.ndarray:
        return self._capacity[: len(self.hosts)]

    @property
    def held(self) -> np.ndarray:
        """What the reported domains hold on each host."""
        return self._held[: len(self.hosts)]

    @property
    def claimed(self) -> np.ndarray:
        """What claims of placements not reported yet hold on each host."""
        return self._claimed[: len(self.hosts)]

    @property
    def count(self) -> np.ndarray:
        """VMs on each host, claims included."""
        return self._count[: len(self.hosts)]

    @property
    def reported_at(self) -> np.ndarray:
        return self._reported_at[: len(self.hosts)]

    @property
    def operator_up(self) -> np.ndarray:
        return self._operator_up[: len(self.hosts)]

    def apply_report(self, report: HostReport, at: float) -> list[str]:
        """The host's new report replaces its old one; returns the VMs whose claims on this
        host it ends (they are running there now). An older report than the one held is
        ignored: two reports of one host may cross on the way."""
        with self.lock:
            old = self._reports.get(report.host)
            if old is not None and old[0].host_uuid and report.host_uuid != old[0].host_uuid:
                raise HostIdentityConflict(report.host, old[0].host_uuid, report.host_uuid)
            i = self._row(report.host)
            if at < self.reported_at[i]:
                return []
            gone = []
            if old is not None:
                for domain in old[0].domains:
                    if domain.holds_resources:
                        self._where.get(domain.name, set()).discard(report.host)
                        if not self._where.get(domain.name, True):
                            del self._where[domain.name]
                            gone.append(domain.name)
                        self._residents[report.host].discard(domain.name)
            if old is None or _shape(old[0]) != _shape(report):
                self._hosts_cluster = None
            self._add_columns(
                {*report.resources, *(r for d in report.domains for r in d.resources)}
            )
            held = np.zeros(len(self.resources), dtype=np.int64)
            for domain in report.domains:
                if domain.holds_resources:
                    held[:3] += (domain.vcpus, domain.memory_mib, domain.disk_mib)
                    for resource, amount in domain.resources.items():
                        held[self.column[resource]] += amount
                    self._where.setdefault(domain.name, set()).add(report.host)
                    self._residents[report.host].add(domain.name)
                    self.labels.put(domain.name, domain.labels)
            for vm in gone:
                if vm not in self._where and vm not in self.claims:
                    self.labels.drop(vm)
            self._reports[report.host] = (report, at)
            self._physical[i] = self.vector(
                {"vcpus": report.cpus, "memory_mib": report.memory_mib,
                 "disk_mib": report.disk_mib, **report.resources}
            )  # fmt: skip
            self.capacity[i] = self._allocatable(self._physical[i])
            self.held[i] = held
            self.reported_at[i] = at
            ended = [
                vm for vm in self._residents[report.host]
                if vm in self.claims and self.claims[vm].host == report.host
            ]  # fmt: skip
            for vm in ended:
                self._forget_claim(vm)
            self.count[i] = len(self._residents[report.host])
            self.version += 1
            return ended

    def forget_identity(self, host: str) -> tuple[HostReport, float] | None:
        """The next report under this name, from whichever libvirt host, sets its identity
        (a machine replaced under the same name); returns the held report without it."""
        with self.lock:
            found = self._reports.get(host)
            if found is None:
                return None
            self._reports[host] = (replace(found[0], host_uuid=""), found[1])
            return self._reports[host]

    def set_state(self, host: str, state: HostState) -> None:
        with self.lock:
            self._states[host] = state
            i = self._row(host)  # first: a new row may move the arrays
            self.operator_up[i] = state is HostState.UP
            self.version += 1

    def set_overcommit(self, overcommit: Mapping[str, float]) -> None:
        with self.lock:
            self._overcommit = dict(overcommit)
            for i in range(len(self.hosts)):
                self.capacity[i] = self._allocatable(self._physical[i])
            self._hosts_cluster = None
            self.version += 1

    def _allocatable(self, physical: np.ndarray) -> np.ndarray:
        amounts = dict(zip(self.resources, (int(v) for v in physical), strict=True))
        room = allocatable(amounts, self._overcommit)
        return np.array([room[r] for r in self.resources], dtype=np.int64)

    # -- claims --------------------------------------------------------------------------

    def add_claim(self, claim: Claim) -> None:
        with self.lock:
            i = self._row(claim.host)
            self.claims[claim.vm] = claim
            heapq.heappush(self._expiry, (claim.expires_at, claim.vm))
            self.claimed[i] += self.vector(claim.demand)
            self._residents[claim.host].add(claim.vm)
            self.count[i] = len(self._residents[claim.host])
            if claim.vm not in self._where:
                self.labels.put(claim.vm, claim.labels)
            self.version += 1

    def drop_claim(self, vm: str) -> bool:
        with self.lock:
            if vm not in self.claims:
                return False
            self._forget_claim(vm)
            self.version += 1
            return True

    def expire(self, now: float) -> None:
        """Claims end at their ``expires_at`` (the store's lapse at the same time)."""
        with self.lock:
            while self._expiry and self._expiry[0][0] <= now:
                at, vm = heapq.heappop(self._expiry)
                claim = self.claims.get(vm)
                if claim is not None and claim.expires_at == at:
                    self._forget_claim(vm)
                    self.version += 1

    def _forget_claim(self, vm: str) -> None:
        claim = self.claims.pop(vm)
        i = self.index[claim.host]
        self.claimed[i] -= self.vector(claim.demand)
        if claim.host not in self._where.get(vm, ()):
            self._residents[claim.host].discard(vm)
        if vm not in self._where:
            self.labels.drop(vm)
        self.count[i] = len(self._residents[claim.host])

    # -- reading it ----------------------------------------------------------------------

    def free(self) -> np.ndarray:
        """Room left on each host (hosts x resources); negative where it is over-full."""
        result: np.ndarray = self.capacity - self.held - self.claimed
        return result

    def accepting(self, now: float) -> np.ndarray:
        """Hosts that take new VMs now: up by the operator's choice and heard from lately
        (a scheduler that was itself away gives every host its full time from its start)."""
        heard = np.maximum(self.reported_at, self._started_at)
        result: np.ndarray = self.operator_up & (now - heard < self._heartbeat.suspect_after_s)
        return result

    def hosts_labelled(self, wanted: Mapping[str, str]) -> np.ndarray:
        """Which hosts carry every label of ``wanted`` (their agents' ``--label``)."""
        if not wanted:
            return np.ones(len(self.hosts), dtype=bool)
        return np.array([
            (r := self.report_of(h)) is not None
            and all(r.labels.get(k) == v for k, v in wanted.items())
            for h in self.hosts
        ], dtype=bool)  # fmt: skip

    def exists(self, vm: str) -> bool:
        return vm in self._where or vm in self.claims

    def hosts_of(self, vm: str) -> Collection[str]:
        claim = self.claims.get(vm)
        found = self._where.get(vm, set())
        return found | {claim.host} if claim is not None else found

    def vms_on(self, host: str) -> Collection[str]:
        return self._residents.get(host, set())

    def vm_names(self) -> set[str]:
        return set(self._where) | set(self.claims)

    def reports(self) -> list[tuple[HostReport, float]]:
        with self.lock:
            return [self._reports[h] for h in sorted(self._reports)]

    def report_of(self, host: str) -> HostReport | None:
        found = self._reports.get(host)
        return None if found is None else found[0]

    def states(self) -> dict[str, HostState]:
        """The state an operator (or host power) chose for each host."""
        with self.lock:
            return dict(self._states)

    def report_times(self) -> dict[str, float]:
        with self.lock:
            return {host: at for host, (_, at) in self._reports.items()}

    def hosts_cluster(self) -> Cluster:
        """The reported hosts with their labels and room, and no VM: what the rules read
        about hosts (a spread's failure domains)."""
        with self.lock:
            if self._hosts_cluster is None:
                hosts = tuple(
                    Host(
                        r.host, dict(zip(self.resources, map(int, self._physical[i]), strict=True)),
                        dict(zip(self.resources, map(int, self.capacity[i]), strict=True)),
                        dict(r.labels),
                    )
                    for r, _ in (self._reports[h] for h in self.hosts if h in self._reports)
                    for i in (self.index[r.host],)
                )  # fmt: skip
                self._hosts_cluster = Cluster("live", hosts, ())
            return self._hosts_cluster


def _shape(report: HostReport) -> tuple[object, ...]:
    """What the hosts' own description depends on: size, countable resources and labels."""
    return (
        report.cpus, report.memory_mib, report.disk_mib,
        tuple(sorted(report.resources.items())), tuple(sorted(report.labels.items())),
    )  # fmt: skip
