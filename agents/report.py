"""What an agent reports about its host: capacity and domains. Plain values with no libvirt
in them, so the scheduler service reads reports without importing libvirt."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


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

    def to_json(self, definitions: bool = True) -> dict[str, Any]:
        """Plain values; without the domain definitions if ``definitions`` is false (the
        store keeps those apart). Built field by field: ``asdict`` copies deeply and costs
        ten times as much, at every report."""
        data = {f: getattr(self, f) for f in HOST_FIELDS}
        data["labels"] = dict(self.labels)
        data["domains"] = [
            {f: getattr(d, f) for f in DOMAIN_FIELDS if definitions or f != "definition"}
            | {"labels": dict(d.labels)}
            for d in self.domains
        ]
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> HostReport:
        domains = tuple(DomainReport(**d) for d in data.get("domains", ()))
        return HostReport(**{**data, "domains": domains})


DOMAIN_FIELDS = tuple(f.name for f in fields(DomainReport))
HOST_FIELDS = tuple(f.name for f in fields(HostReport) if f.name != "domains")
