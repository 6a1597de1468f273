"""The real lab for end-to-end tests: libvirtd hosts, heartbeat guests under QEMU (TCG), the
scheduler service and one agent per host, all on this machine and stopped afterwards."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import libvirt

from agents.agent import Agent, AgentConfig
from agents.events import ensure_event_loop
from agents.metrics import serve_metrics
from tests.service_harness import AGENT_TOKEN, free_port
from vmpack_lab.guest import build_guest, domain_xml, heartbeats
from vmpack_lab.hosts import LabHost, lab_hosts, start, stop

GUEST_CACHE = Path("/var/cache/vmpack-lab/guest")


@dataclass
class Lab:
    hosts: list[LabHost]
    consoles: dict[str, Path]

    def where(self) -> dict[str, list[str]]:
        """VM -> the hosts where libvirt says it is active (exactly one, always). A host whose
        libvirtd is dead runs nothing."""
        found: dict[str, list[str]] = {}
        for host in self.hosts:
            try:
                conn = libvirt.open(host.uri)
            except libvirt.libvirtError:
                continue
            try:
                for dom in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE):
                    found.setdefault(dom.name(), []).append(host.name)
            finally:
                conn.close()
        return found


@contextmanager
def lab(base: Path, layout: list[list[str]], memory_mib: int = 128) -> Iterator[Lab]:
    """Hosts lab1..labN; ``layout[i]`` names the guests booted on host i."""
    kernel, initrd = build_guest(GUEST_CACHE)
    ports = [free_port() for _ in layout]  # never the ports of a lab a user may be running
    hosts = lab_hosts(len(layout), base, ports, first_migration_port=49800)
    consoles: dict[str, Path] = {}
    try:
        for host in hosts:
            start(host)
        for host, guests in zip(hosts, layout, strict=True):
            conn = libvirt.open(host.uri)
            for name in guests:
                consoles[name] = base / f"{name}.console"
                conn.defineXML(
                    domain_xml(name, memory_mib, kernel, initrd, consoles[name])
                ).create()
            conn.close()
        wait_for(lambda: all(heartbeats(c) for c in consoles.values()), 120, "guests to boot")
        yield Lab(hosts, consoles)
    finally:
        for host in hosts:
            stop(host)


@contextmanager
def agents(
    scheduler_url: str,
    hosts: list[LabHost],
    interval_s: float = 0.5,
    metrics_ports: list[int] | None = None,
    racks: list[str] | None = None,
) -> Iterator[list[Agent]]:
    ensure_event_loop()  # as `vmpack agent` does: lifecycle events trigger early reports
    # On loopback, each destination's QEMU listens on 127.0.0.1 for the migration stream.
    racks = racks or ["r1"] * len(hosts)
    configs = [
        AgentConfig(h.name, h.uri, scheduler_url, AGENT_TOKEN, interval_s, {"rack": rack}, 2.0)
        for h, rack in zip(hosts, racks, strict=True)
    ]
    running = [Agent(replace(c, migration_address="127.0.0.1")) for c in configs]
    threads = [threading.Thread(target=a.run, daemon=True) for a in running]
    servers = [
        serve_metrics(agent, "127.0.0.1", port)
        for agent, port in zip(running, metrics_ports or [], strict=False)
    ]
    for thread in threads:
        thread.start()
    try:
        yield running
    finally:
        for server in servers:
            server.shutdown()
        for agent in running:
            agent.stop()
        for thread in threads:
            thread.join(15)


def wait_for_reports(ops: Any, hosts: int, vms: int, timeout_s: float = 30) -> None:
    """Until every host has reported and the reports hold ``vms`` VMs: a host with no VMs
    is still one the scheduler must know before it can move anything there."""

    def reported() -> bool:
        listed = ops.get("/v1/hosts").json()
        return len(listed) == hosts and sum(h["vms"] for h in listed) == vms

    wait_for(reported, timeout_s, f"reports from {hosts} hosts with {vms} VMs")


def wait_for(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
