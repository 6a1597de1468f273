"""The only module that reads libvirt: a host's capacity and its domains, as a report.

Which figure is host memory: ``virConnect.getInfo()[1]``, the node's memory as libvirt reads
it from NUMA sysfs, i.e. what the hypervisor can hand to guests. ``getMemoryStats()`` reads
/proc/meminfo instead; on a host that is itself a VM (nested labs, some clouds) the two can
disagree, and /proc/meminfo then moves with the balloon of the outer hypervisor. Capacity must
be stable to plan against, so we take getInfo() and report getMemoryStats() (when the driver
offers it) separately as ``memory_free_mib``, a usage figure, never a capacity.

The host UUID comes from the capabilities document: it tells one machine from another when
two agents are given one host name.

Disk capacity is the sum of the active storage pools; a domain's disk demand is the sum of
its disks' capacities (``blockInfo``). Drivers without pools or disk information report 0.

Countable resources: the host devices libvirt lists (``devices.py``) and what the operator
declares for the host (``--resource licence_sql=8``); a domain takes its host devices and
what its metadata declares (``<resource name="licence_sql">2</resource>``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping

import libvirt

from agents.devices import HostDevices, PciOffer, read_host_devices
from agents.report import DomainReport, HostReport, resource_name_ok

# Silence libvirt's default handler that prints every error on stderr; we raise instead.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "running",  # blocked on I/O: still running
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}
MIB = 2**20
METADATA_NS = "https://vmpack.dev/xmlns/1"
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,252}")  # as the scheduler's names
MAX_LABELS = 64
MAX_COUNT = 2**40  # as the scheduler's counts


def probe(
    conn: libvirt.virConnect,
    host: str,
    labels: dict[str, str] | None = None,
    libvirt_uri: str = "",
    migration_address: str = "",
    pci_offers: Iterable[PciOffer] = (),
    declared: Mapping[str, int] | None = None,
) -> HostReport:
    """Read the host and every domain defined on it through one libvirt connection;
    ``declared``: the host's countable resources that libvirt cannot see."""
    _model, memory_mib, cpus, *_ = conn.getInfo()
    devices = read_host_devices(conn, pci_offers)
    return HostReport(
        host=host,
        cpus=int(cpus),
        memory_mib=int(memory_mib),
        disk_mib=_pool_capacity_mib(conn),
        domains=_domains(conn, devices),
        memory_free_mib=_free_memory_mib(conn),
        libvirt_version=int(conn.getLibVersion()),
        labels=dict(labels or {}),
        libvirt_uri=libvirt_uri,
        migration_address=migration_address,
        host_uuid=host_uuid(conn),
        resources={**devices.capacity, **(declared or {})},
    )


def host_uuid(conn: libvirt.virConnect) -> str:
    """libvirt's UUID of the machine (SMBIOS, or ``host_uuid`` in libvirtd.conf): the
    scheduler refuses a report under a known host name from another machine. "" where the
    driver has none (the test driver)."""
    return ET.fromstring(conn.getCapabilities()).findtext("host/uuid") or ""


def _domains(conn: libvirt.virConnect, devices: HostDevices) -> tuple[DomainReport, ...]:
    """Every domain that still exists when read: one may vanish between the listing and the
    reading (undefined on the source as its migration ends); it is simply no longer here."""
    found = []
    for dom in conn.listAllDomains():
        try:
            found.append(_domain(dom, devices))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise
    return tuple(found)


def _domain(dom: libvirt.virDomain, devices: HostDevices) -> DomainReport:
    state, max_mem_kib, _mem_kib, vcpus, cpu_time_ns = dom.info()
    definition = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    tree = ET.fromstring(definition)
    taken, has_host_devices = devices.demand(tree)
    return DomainReport(
        name=dom.name(),
        uuid=dom.UUIDString(),
        vcpus=int(vcpus),
        memory_mib=int(max_mem_kib) // 1024,
        disk_mib=_disk_mib(dom, tree),
        state=STATES.get(state, "nostate"),
        persistent=bool(dom.isPersistent()),
        cpu_time_ns=int(cpu_time_ns),
        priority=_priority(tree),
        definition=definition,
        labels=_labels(tree),
        resources={**taken, **_declared(tree)},
        migratable=not has_host_devices,
    )


def _priority(tree: ET.Element) -> int:
    """``virsh metadata DOMAIN --uri https://vmpack.dev/xmlns/1 --key vmpack
    --set '<vmpack><priority>10</priority><label key="app">db</label></vmpack>'`` sets it
    (and the VM's labels); absent or malformed is 0."""
    found = tree.find(f"./metadata/{{{METADATA_NS}}}vmpack/{{{METADATA_NS}}}priority")
    try:
        return int((found.text or "").strip()) if found is not None else 0
    except ValueError:
        return 0


def _labels(tree: ET.Element) -> dict[str, str]:
    """``<label key="app">db</label>`` elements in the same metadata element as the priority:
    what the rules' label selectors match. Keys and values that the scheduler would refuse
    (empty, too long, a key not a name) are left out rather than lose the whole report."""
    found: dict[str, str] = {}
    for label in tree.iterfind(f"./metadata/{{{METADATA_NS}}}vmpack/{{{METADATA_NS}}}label"):
        key, value = label.get("key", ""), (label.text or "").strip()
        if LABEL_KEY.fullmatch(key) and len(value) <= 253 and len(found) < MAX_LABELS:
            found[key] = value
    return found


def _declared(tree: ET.Element) -> dict[str, int]:
    """``<resource name="licence_sql">2</resource>`` in the same metadata element: what the
    VM takes of a resource libvirt cannot see. Malformed entries are left out."""
    found: dict[str, int] = {}
    for item in tree.iterfind(f"./metadata/{{{METADATA_NS}}}vmpack/{{{METADATA_NS}}}resource"):
        name, text = item.get("name", ""), (item.text or "").strip()
        if resource_name_ok(name) and text.isdigit() and int(text) <= MAX_COUNT:
            found[name] = int(text)
    return found


def _disk_mib(dom: libvirt.virDomain, tree: ET.Element) -> int:
    total = 0
    for disk in tree.iterfind("./devices/disk[@device='disk']"):
        target = disk.find("target")
        if target is None:
            continue
        try:
            capacity, _allocation, _physical = dom.blockInfo(target.get("dev", ""))
        except libvirt.libvirtError:
            continue  # no size known (e.g. a network disk the driver cannot query)
        total += capacity // MIB
    return total


def _pool_capacity_mib(conn: libvirt.virConnect) -> int:
    try:
        pools = conn.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE)
    except libvirt.libvirtError:
        return 0
    return sum(pool.info()[1] // MIB for pool in pools)


def _free_memory_mib(conn: libvirt.virConnect) -> int | None:
    try:
        stats = conn.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
    except libvirt.libvirtError:
        return None  # the driver does not offer /proc/meminfo figures
    free = stats.get("free", 0) + stats.get("buffers", 0) + stats.get("cached", 0)
    return int(free) // 1024
