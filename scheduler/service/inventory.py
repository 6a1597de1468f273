"""Agent reports -> the cluster snapshot the engine plans on.

Reports are facts from each host; the snapshot is the scheduler's view: hosts with their
capacity after overcommit, and every domain that holds resources placed on the host that
reports it. A live migration shows the same domain on two hosts for a moment (paused on the
destination, running on the source); the running copy is where the VM is. Two running copies
would mean a VM running twice: it is a conflict, reported (``vmpack vms``, ``GET /v1/vms``, a
metric and an alert) and never silently resolved: the VM is held where the snapshot puts it,
so no plan moves it until a person has looked. The same goes for one domain UUID running
under two names on two hosts (a report that claims another host's VM as its own), and for a
VM with a host device, which libvirt cannot live-migrate. A host
that is down keeps its last report: its VMs stay there until they run somewhere else. A VM
the placement API sent to a host counts there, by its claim, until that host reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agents.report import DomainReport, HostReport
from scheduler.model import (
    DISK,
    MEMORY,
    VCPUS,
    VM,
    Cluster,
    Host,
    HostState,
    Limits,
    Policy,
    allocatable,
)
from scheduler.rules import Rule, held_in_place
from scheduler.scenario.policy import LivePolicy
from scheduler.service.records import Claim


@dataclass(frozen=True)
class Inventory:
    cluster: Cluster
    conflicts: Mapping[str, str]  # VM -> why: seen running on more than one host


def snapshot(
    reports: Iterable[HostReport],
    states: Mapping[str, HostState] | None = None,
    policy: Policy | None = None,
    rules: tuple[Rule, ...] = (),
    limits: Limits | None = None,
    name: str = "live",
    claims: Iterable[Claim] = (),
) -> Inventory:
    policy = policy or Policy()
    states = states or {}
    reports = sorted(reports, key=lambda r: r.host)
    hosts = tuple(_host(r, states.get(r.host, HostState.UP), policy) for r in reports)
    copies: dict[str, list[tuple[str, DomainReport]]] = {}
    for report in reports:
        for domain in report.domains:
            if domain.holds_resources:
                copies.setdefault(domain.name, []).append((report.host, domain))
    vms, conflicts = [], _same_uuid_twice(reports, states)
    for vm_name in sorted(copies):
        host, domain, conflict = _where(vm_name, copies[vm_name], states)
        if conflict:
            conflicts[vm_name] = conflict
        vms.append(
            VM(
                vm_name,
                {
                    VCPUS: domain.vcpus,
                    MEMORY: domain.memory_mib,
                    DISK: domain.disk_mib,
                    **domain.resources,
                },
                host,
                labels=dict(domain.labels),
                usage={} if domain.cpu_usage is None else {"cpu": domain.cpu_usage},
                priority=domain.priority,
            )
        )
    # A VM placed through the API holds its room until its host reports it. It does not
    # exist yet, so it is held where it is (no plan moves it), and a host that went down
    # takes its claims along.
    alive = {h.name for h in hosts if h.state is not HostState.DOWN}
    claimed = [c for c in claims if c.vm not in copies and c.host in alive]
    vms += [VM(c.vm, dict(c.demand), c.host, dict(c.labels)) for c in claimed]
    cluster = Cluster(name, hosts, tuple(vms), rules, policy, limits or Limits())
    held = [c.vm for c in claimed] + [vm for vm in conflicts if vm in cluster.vm_by_name]
    held += _with_host_devices(copies, states)
    return Inventory(held_in_place(cluster, set(held)), conflicts)


def rules_now(
    policy: LivePolicy, reports: Iterable[HostReport], claims: Iterable[Claim]
) -> tuple[Rule, ...]:
    """The policy's rules over the VMs that exist now: those reported and those placed."""
    labels: dict[str, dict[str, str]] = {c.vm: dict(c.labels) for c in claims}
    labels.update({d.name: dict(d.labels) for r in reports for d in r.domains if d.holds_resources})
    return policy.rules_for(labels)


def _with_host_devices(
    copies: Mapping[str, list[tuple[str, DomainReport]]], states: Mapping[str, HostState]
) -> list[str]:
    """VMs with a host device (a GPU passed through, a vGPU): libvirt cannot live-migrate
    them, so plans keep them where they run; on a host that is down they may restart."""
    return [
        vm for vm, found in copies.items()
        if any(not d.migratable and states.get(h) is not HostState.DOWN for h, d in found)
    ]  # fmt: skip


def _host(report: HostReport, state: HostState, policy: Policy) -> Host:
    physical = {VCPUS: report.cpus, MEMORY: report.memory_mib, DISK: report.disk_mib,
                **report.resources}  # fmt: skip
    capacity = allocatable(physical, policy.overcommit)
    return Host(report.host, physical, capacity, dict(report.labels), state)


def _same_uuid_twice(
    reports: Iterable[HostReport], states: Mapping[str, HostState]
) -> dict[str, str]:
    """VMs whose domain UUID runs on two live hosts under different names."""
    running: dict[str, list[tuple[str, str]]] = {}
    for report in reports:
        if states.get(report.host, HostState.UP) is HostState.DOWN:
            continue
        for domain in report.domains:
            if domain.state == "running":
                running.setdefault(domain.uuid, []).append((report.host, domain.name))
    found = {}
    for uuid, where in running.items():
        if len({name for _, name in where}) > 1:
            seen = ", ".join(f"{name} on {host}" for host, name in sorted(where))
            for _, name in where:
                found[name] = f"domain {uuid} is running as {seen}"
    return found


def _where(
    vm: str, copies: list[tuple[str, DomainReport]], states: Mapping[str, HostState]
) -> tuple[str, DomainReport, str]:
    if len(copies) == 1:  # the common case, kept cheap: 10,000 VMs per snapshot
        return copies[0][0], copies[0][1], ""
    # The last report of a host that is down is history: a VM restarted elsewhere since
    # shows there too, and the live copy is where it is.
    live = [(h, d) for h, d in copies if states.get(h, HostState.UP) is not HostState.DOWN]
    copies = live or copies
    running = [(h, d) for h, d in copies if d.state == "running"]
    if len(running) > 1:
        hosts = ", ".join(sorted(h for h, _ in running))
        return running[0][0], running[0][1], f"{vm} is running on {hosts}"
    host, domain = running[0] if running else copies[0]
    return host, domain, ""
