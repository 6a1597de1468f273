"""Countable resources live: the agent reads PCI devices offered for passthrough, mdev types
and metadata-declared resources through libvirt; the scheduler places by them, plans keep
VMs with host devices where they are, and the policy's ratios apply per resource.

This machine has no GPU: the hosts are libvirt test-driver nodes whose node devices are
written as libvirt lists them on a host with an NVIDIA T4 (one bound for passthrough, one
sliced into vGPUs)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import libvirt
import pytest

from agents.agent import Agent, AgentConfig
from agents.devices import PciOffer, read_host_devices
from agents.libvirt_probe import probe
from scheduler.scenario.policy import parse_policy
from tests.service_harness import AGENT_TOKEN, OPERATOR_TOKEN, Service, running_service

GPU_T4 = PciOffer(0x10DE, 0x1EB8, "gpu_t4")
MDEV = "4b20d080-1b54-4048-85b3-a6a62d165c01"
T4 = "<product id='0x1eb8'>TU104GL [Tesla T4]</product><vendor id='0x10de'>NVIDIA</vendor>"
SLICES = """<capability type='mdev_types'>
        <type id='nvidia-222'><name>GRID T4-1B</name><deviceAPI>vfio-pci</deviceAPI>
          <availableInstances>14</availableInstances></type></capability>"""


def pci(bus: int, slot: int, ids: str, inside: str = "") -> str:
    """A PCI node device as libvirt lists it (class, address, ids, maybe its mdev types)."""
    return f"""
  <device><name>pci_0000_{bus:02x}_{slot:02x}_0</name><parent>computer</parent>
    <capability type='pci'><class>0x030200</class><domain>0</domain><bus>{bus}</bus>
      <slot>{slot}</slot><function>0</function>{ids}{inside}</capability></device>"""


DEVICES = (
    pci(0x3B, 0, T4)  # two T4s for passthrough
    + pci(0x3C, 0, T4)
    + pci(0x5E, 0, T4, SLICES)  # one sliced into vGPUs, one slice made
    + f"""
  <device><name>mdev_{MDEV.replace("-", "_")}</name><parent>pci_0000_5e_00_0</parent>
    <capability type='mdev'><type id='nvidia-222'/><iommuGroup number='0'/></capability>
  </device>"""
    + pci(0, 0x1F, "<product id='0xa1c1'>C621 LPC</product><vendor id='0x8086'>Intel</vendor>")
)
HOSTDEVS = f"""
    <devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='mdev' model='vfio-pci'>
        <source><address uuid='{MDEV}'/></source>
      </hostdev>
    </devices>"""
LICENCE = """
    <metadata><vmpack:vmpack xmlns:vmpack="https://vmpack.dev/xmlns/1">
      <vmpack:resource name="licence_sql">2</vmpack:resource>
    </vmpack:vmpack></metadata>"""


def node(path: Path, devices: str, domains: list[tuple[str, int, str]]) -> str:
    """A test-driver host with 16 CPUs and 64 GiB; ``domains``: (name, memory MiB, extra XML)."""
    written = "\n".join(
        f"""  <domain type='test'><name>{name}</name>
    <uuid>{zlib.crc32(path.name.encode()):08x}-0000-4000-8000-{i:012x}</uuid>{extra}
    <memory unit='MiB'>{memory}</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>
  </domain>"""
        for i, (name, memory, extra) in enumerate(domains)
    )
    path.write_text(f"""<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>16</active><nodes>1</nodes>
    <sockets>1</sockets><cores>16</cores><threads>1</threads></cpu>
  <memory>{64 * 2**20}</memory>{devices}
{written}
</node>
""")
    return f"test://{path}"


def test_the_agent_reads_offered_pci_devices_mdev_types_and_what_each_domain_takes(
    tmp_path: Path,
) -> None:
    uri = node(tmp_path / "gpu.xml", DEVICES, [("train", 4096, HOSTDEVS + LICENCE)])
    conn = libvirt.open(uri)
    devices = read_host_devices(conn, [GPU_T4])
    # Two T4 for passthrough; the one sliced into vGPUs is not one of them; 14 slices left
    # and one made; the chipset is nobody's.
    assert devices.capacity == {"gpu_t4": 2, "mdev_nvidia-222": 15}
    report = probe(conn, "gpu-01", pci_offers=[GPU_T4], declared={"licence_sql": 8})
    assert report.resources == {"gpu_t4": 2, "mdev_nvidia-222": 15, "licence_sql": 8}
    (train,) = report.domains
    assert train.resources == {"gpu_t4": 1, "mdev_nvidia-222": 1, "licence_sql": 2}
    assert not train.migratable  # libvirt cannot live-migrate a host device
    assert read_host_devices(conn, []).capacity == {"mdev_nvidia-222": 15}  # nothing offered


def test_pci_offers_are_checked_at_start() -> None:
    assert PciOffer.parse("10de:1eb8=gpu_t4") == GPU_T4
    for bad in ("10de-1eb8=gpu", "10de:1eb8", "10de:1eb8=9gpu", "zzzz:1eb8=gpu"):
        with pytest.raises(ValueError, match="expected VENDOR:PRODUCT=NAME"):
            PciOffer.parse(bad)


def gpu_cluster(tmp_path: Path, service: Service) -> list[Agent]:
    """gpu-01 with the T4s and a training VM on one; cpu-01 with none; both report."""
    hosts = {
        "gpu-01": node(tmp_path / "gpu.xml", DEVICES, [("train", 4096, HOSTDEVS + LICENCE)]),
        "cpu-01": node(tmp_path / "cpu.xml", "", [("web", 4096, "")]),
    }
    team = []
    for name, uri in hosts.items():
        conn = libvirt.open(uri)  # the test driver keeps state per connection: share one
        config = AgentConfig(name, uri, service.url, AGENT_TOKEN, pci_offers=(GPU_T4,),
                             resources={"licence_sql": 8} if name == "gpu-01" else {})  # fmt: skip
        team.append(Agent(config, connect=lambda _uri, c=conn: c))
    assert all(agent.beat() for agent in team)
    return team


def test_a_placement_asks_for_a_gpu_and_gets_a_host_that_has_one_left(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        gpu_cluster(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        hosts = {h["name"]: h for h in ops.get("/v1/hosts").json()}
        assert hosts["gpu-01"]["capacity"]["gpu_t4"] == 2
        assert "gpu_t4" not in hosts["cpu-01"]["capacity"]
        train = {v["name"]: v for v in ops.get("/v1/vms").json()}["train"]
        assert train["demand"]["gpu_t4"] == 1 and train["migratable"] is False

        def ask(name: str, **resources: int) -> dict[str, object]:
            body = {"name": name, "vcpus": 1, "memory": "1GiB", "resources": resources}
            answer = ops.post("/v1/placements", json=body)
            return {"status": answer.status_code, **answer.json()}

        assert ask("infer-1", gpu_t4=1)["host"] == "gpu-01"  # train holds the other T4
        refused = ask("infer-2", gpu_t4=1)
        assert refused["status"] == 409 and "lacks free gpu_t4" in str(refused["error"])
        assert "is too small in gpu_t4" in str(refused["error"])  # cpu-01 has none at all
        assert ask("report", licence_sql=6)["host"] == "gpu-01"  # 8 declared, 2 taken
        unknown = ask("quantum", qpu=1)
        assert unknown["status"] == 409 and "are too small in qpu" in str(unknown["error"])
        bad = ops.post("/v1/placements", json={"name": "x", "vcpus": 1, "memory": "1GiB",
                                               "resources": {"vcpus": 2}})  # fmt: skip
        assert bad.status_code == 422 and "resources" in bad.json()["error"]


def test_plans_keep_a_vm_with_host_devices_where_it_runs(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        gpu_cluster(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3}).json()
        placement = ops.get(f"/v1/plans/{created['id']}").json()["plan"]["placement"]
        assert placement == {"train": "gpu-01", "web": "gpu-01"}  # web joins train, not back
        drain = ops.post("/v1/plans", json={"goal": "evacuate", "hosts": ["gpu-01"],
                                            "time_limit_s": 3}).json()  # fmt: skip
        assert drain["summary"]["moves"] == 0  # cpu-01 has no T4 for it anyway
        assert drain["summary"]["unplaced_or_stranded"] == ["train"]


def test_the_agent_refuses_a_malformed_resource_or_pci_flag(tmp_path: Path) -> None:
    token = tmp_path / "agent.token"
    token.write_text(AGENT_TOKEN)
    for flag, value in [("--pci", "10de-1eb8=gpu"), ("--resource", "cpu=4"),
                        ("--resource", "licence"), ("--pci", "10de:1eb8=9"),
                        ("--scheduler", "http://s1:8700,s2:8700")]:  # fmt: skip
        command = [sys.executable, "-m", "scheduler.cli.main", "agent", "--scheduler",
                   "http://127.0.0.1:9", "--token-file", str(token), flag, value]  # fmt: skip
        ran = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 2, ran.stderr
        (line,) = ran.stderr.strip().splitlines()
        assert flag in line


def test_the_policy_sets_the_allocation_ratio_of_each_resource(tmp_path: Path) -> None:
    policy = parse_policy("policy:\n  overcommit: {licence_sql: 2.0}\n", "policy.yaml")
    with running_service(tmp_path / "vmpack.db", policy_file=policy) as service:
        gpu_cluster(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        hosts = {h["name"]: h for h in ops.get("/v1/hosts").json()}
        assert hosts["gpu-01"]["physical"]["licence_sql"] == 8
        assert hosts["gpu-01"]["capacity"]["licence_sql"] == 16
        body = {"name": "etl", "vcpus": 1, "memory": "1GiB", "resources": {"licence_sql": 14}}
        assert ops.post("/v1/placements", json=body).json()["host"] == "gpu-01"


def test_the_domain_xml_without_devices_takes_nothing(tmp_path: Path) -> None:
    uri = node(tmp_path / "gpu.xml", DEVICES, [("plain", 1024, "")])
    conn = libvirt.open(uri)
    devices = read_host_devices(conn, [GPU_T4])
    tree = ET.fromstring(conn.lookupByName("plain").XMLDesc())
    assert devices.demand(tree) == ({}, False)
