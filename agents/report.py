"""What an agent reports about its host: capacity and domains. Plain values with no libvirt
in them, so the scheduler service reads reports without importing libvirt."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any

RESOURCE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}")
CORE = frozenset({"vcpus", "memory_mib", "disk_mib", "cpu", "memory", "disk"})


def resource_name_ok(name: str) -> bool:
    """A countable resource's name (``gpu_t4``, ``mdev_nvidia-222``): a letter, then letters,
    digits, ``_ . -``; never CPU, memory or disk, which every report carries apart."""
    return bool(RESOURCE_NAME.fullmatch(name)) and name not in CORE


@dataclass(frozen=True)
class DomainReport:
    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    disk_mib: int
    state: str
    persistent: bool
    cpu_time_ns: int
    priority: int = 0  # <vmpack:priority> in the domain's metadata: restart order on failover
    definition: str = ""  # the persistent domain XML, to restart it elsewhere; "" if unchanged
    cpu_usage: float | None = None  # share of its vCPUs used since the previous probe (0..1)
    labels: dict[str, str] = field(default_factory=dict)  # <vmpack:label key=...> metadata
    # Countable resources beyond CPU, memory and disk it takes: host devices, metadata.
    resources: dict[str, int] = field(default_factory=dict)
    migratable: bool = True  # False with a host device: libvirt cannot live-migrate it

    @property
    def holds_resources(self) -> bool:
        """Running or paused domains hold memory on the host; shut-off ones do not."""
        return self.state in ("running", "paused", "nostate", "pmsuspended")


@dataclass(frozen=True)
class HostReport:
    host: str
    cpus: int
    memory_mib: int
    disk_mib: int
    domains: tuple[DomainReport, ...] = ()
    memory_free_mib: int | None = None
    libvirt_version: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    libvirt_uri: str = ""  # how other hosts' libvirtd reach this one, for migrations
    migration_address: str = ""  # where incoming migration streams connect, if not advertised
    host_uuid: str = ""  # libvirt's host UUID: which machine speaks under this host name
    resources: dict[str, int] = field(default_factory=dict)  # countable: GPUs, licences

    def to_json(self, definitions: bool = True) -> dict[str, Any]:
        """Plain values; without the domain definitions if ``definitions`` is false (the
        store keeps those apart). Built field by field: ``asdict`` copies deeply and costs
        ten times as much, at every report."""
        data = {f: getattr(self, f) for f in HOST_FIELDS}
        data["labels"], data["resources"] = dict(self.labels), dict(self.resources)
        data["domains"] = [
            {f: getattr(d, f) for f in DOMAIN_FIELDS if definitions or f != "definition"}
            | {"labels": dict(d.labels), "resources": dict(d.resources)}
            for d in self.domains
        ]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> HostReport:
        domains = tuple(DomainReport(**d) for d in data.get("domains", ()))
        return HostReport(**{**data, "domains": domains})


DOMAIN_FIELDS = tuple(f.name for f in fields(DomainReport))
HOST_FIELDS = tuple(f.name for f in fields(HostReport) if f.name != "domains")
