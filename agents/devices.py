"""Countable host resources that libvirt sees as node devices, and what each domain takes.

- **PCI passthrough.** Which PCI devices a host offers to guests is the operator's choice,
  as in Nova's device spec: ``--pci 10de:1eb8=gpu_t4`` counts every device with that vendor
  and product id as one ``gpu_t4``, except one that offers mdev types (it is sliced into
  vGPUs, not passed whole). A domain's ``<hostdev type='pci'>`` at such a device's address
  takes one.
- **Mediated devices** (vGPU slices): every mdev type a parent device offers is a resource
  ``mdev_<type id>``; its count is what can still be created plus what exists. A domain's
  ``<hostdev type='mdev'>`` takes one of its device's type.

A domain with any host device cannot be live-migrated (libvirt refuses), so the report says
so and the scheduler keeps it where it runs.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field

import libvirt

from agents.report import resource_name_ok

PCI_ID = re.compile(r"(?P<vendor>[0-9a-fA-F]{4}):(?P<product>[0-9a-fA-F]{4})=(?P<name>.+)")
MDEV_PREFIX = "mdev_"

PciAddress = tuple[int, int, int, int]  # domain, bus, slot, function


@dataclass(frozen=True)
class PciOffer:
    """PCI devices with this vendor and product id count as one ``name`` each."""

    vendor: int
    product: int
    name: str

    @staticmethod
    def parse(text: str) -> PciOffer:
        """``VENDOR:PRODUCT=NAME`` in hex, as ``lspci -nn`` prints the ids."""
        found = PCI_ID.fullmatch(text.strip())
        if found is None or not resource_name_ok(found["name"]):
            raise ValueError(
                f"--pci {text!r}: expected VENDOR:PRODUCT=NAME, e.g. 10de:1eb8=gpu_t4 (hex ids "
                "as lspci -nn prints them; NAME a letter, then letters, digits, _ . -)"
            )
        return PciOffer(int(found["vendor"], 16), int(found["product"], 16), found["name"])


@dataclass(frozen=True)
class HostDevices:
    capacity: dict[str, int] = field(default_factory=dict)
    offered: dict[PciAddress, str] = field(default_factory=dict)  # address -> resource
    mdevs: dict[str, str] = field(default_factory=dict)  # mdev UUID -> resource

    def demand(self, tree: ET.Element) -> tuple[dict[str, int], bool]:
        """What a domain definition takes of these devices, and whether it has any host
        device at all (then it cannot be live-migrated)."""
        taken: dict[str, int] = {}
        hostdevs = tree.findall("./devices/hostdev")
        for hostdev in hostdevs:
            resource = self._resource_of(hostdev)
            if resource is not None:
                taken[resource] = taken.get(resource, 0) + 1
        return taken, bool(hostdevs)

    def _resource_of(self, hostdev: ET.Element) -> str | None:
        address = hostdev.find("./source/address")
        if address is None:
            return None
        if hostdev.get("type") == "mdev":
            return self.mdevs.get(address.get("uuid", "").lower())
        if hostdev.get("type") == "pci":
            try:
                where = tuple(int(address.get(k, ""), 0) for k in PCI_FIELDS)
            except ValueError:
                return None
            return self.offered.get(where)  # type: ignore[arg-type]
        return None


PCI_FIELDS = ("domain", "bus", "slot", "function")


def read_host_devices(conn: libvirt.virConnect, offers: Iterable[PciOffer]) -> HostDevices:
    """The host's PCI devices that ``offers`` name and its mdev types; none where the
    driver lists no node devices."""
    by_id = {(o.vendor, o.product): o.name for o in offers}
    flags = (
        libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV
        | libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_MDEV
    )
    try:
        devices = [ET.fromstring(d.XMLDesc()) for d in conn.listAllDevices(flags)]
    except libvirt.libvirtError:
        return HostDevices()
    capacity: dict[str, int] = {}
    offered: dict[PciAddress, str] = {}
    mdevs: dict[str, str] = {}
    for device in devices:
        pci = device.find("./capability[@type='pci']")
        if pci is not None:
            kinds = pci.findall("./capability[@type='mdev_types']/type")
            name = by_id.get((_hex(pci, "vendor"), _hex(pci, "product")))
            if name is not None and not kinds:  # one sliced into vGPUs is not passed whole
                offered[_address(pci)] = name
                capacity[name] = capacity.get(name, 0) + 1
            for kind in kinds:
                resource = MDEV_PREFIX + kind.get("id", "")
                left = int(kind.findtext("availableInstances") or 0)
                capacity[resource] = capacity.get(resource, 0) + left
        mdev = device.find("./capability[@type='mdev']")
        if mdev is not None:
            made = mdev.find("type")
            resource = MDEV_PREFIX + (made.get("id", "") if made is not None else "")
            mdevs[(mdev.findtext("uuid") or _uuid_of(device)).lower()] = resource
            capacity[resource] = capacity.get(resource, 0) + 1  # exists: no longer "available"
    return HostDevices(capacity, offered, mdevs)


def _hex(pci: ET.Element, what: str) -> int:
    found = pci.find(what)
    try:
        return int(found.get("id", ""), 16) if found is not None else -1
    except ValueError:
        return -1


def _address(pci: ET.Element) -> PciAddress:
    a, b, c, d = (int(pci.findtext(k) or 0) for k in PCI_FIELDS)
    return a, b, c, d


def _uuid_of(device: ET.Element) -> str:
    """Older libvirt names an mdev ``mdev_<uuid with underscores>`` and gives no <uuid>."""
    name = device.findtext("name") or ""
    return name.removeprefix("mdev_")[:36].replace("_", "-")
