"""Simulated KVM hosts for read-path tests: one libvirt test-driver node file per host.

The test driver gives each ``open()`` of a file URI private state, so tests keep one
connection per host (see ``connect``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import libvirt

NODE = """<?xml version="1.0"?>
<node xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active><nodes>1</nodes>
    <sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{memory_kib}</memory>
{domains}
</node>
"""
DOMAIN = """  <domain type='test'>
    <name>{name}</name><uuid>{uuid}</uuid>
    <memory unit='MiB'>{memory_mib}</memory><vcpu>{vcpus}</vcpu>
    <os><type arch='x86_64'>hvm</type></os>
    <test:runstate>{runstate}</test:runstate>
  </domain>"""
RUNSTATE = {"running": 1, "paused": 3, "shutoff": 5}


@dataclass(frozen=True)
class Guest:
    name: str
    memory_mib: int
    vcpus: int = 1
    state: str = "running"


def write_host(directory: Path, index: int, cpus: int, memory_gib: int, guests: list[Guest]) -> str:
    """Write host ``index``'s node file and return its libvirt URI."""
    domains = "\n".join(
        DOMAIN.format(
            name=g.name,
            uuid=f"{index:08x}-0000-4000-8000-{j:012x}",
            memory_mib=g.memory_mib,
            vcpus=g.vcpus,
            runstate=RUNSTATE[g.state],
        )
        for j, g in enumerate(guests)
    )
    path = directory / f"host{index}.xml"
    path.write_text(NODE.format(cpus=cpus, memory_kib=memory_gib * 2**20, domains=domains))
    return f"test://{path}"


def connect(uri: str) -> libvirt.virConnect:
    return libvirt.open(uri)
