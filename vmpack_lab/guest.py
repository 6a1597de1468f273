"""A tiny diskless guest for the lab: a Debian kernel and a busybox initramfs whose /init
prints a heartbeat on the serial console every second, so a test can tell that a guest kept
running through a live migration (the count goes on, "GUEST-BOOTED" appears once).

Built from two Debian packages fetched with ``apt-get download`` (nothing is installed), and
cached: a second build is free. Guests run under TCG (``type='qemu'``); 96 MiB is the least
this kernel boots with.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

VIRTIO_MODULES = (
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
    "virtio_pci", "virtio_balloon",
)  # fmt: skip
INIT = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in {modules}; do insmod /lib/modules/$m.ko 2>/dev/null; done
echo "GUEST-BOOTED uptime=$(cut -d' ' -f1 /proc/uptime)"
i=0
while true; do
  i=$((i+1))
  echo "HEARTBEAT $i"
  sleep 1
done
"""
DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <currentMemory unit='MiB'>{memory_mib}</currentMemory>
  <vcpu placement='static'>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
    <memballoon model='virtio'><stats period='1'/></memballoon>
  </devices>
</domain>
"""


def build_guest(out: Path) -> tuple[Path, Path]:
    """(kernel, initramfs) in ``out``, built once."""
    kernel, initrd = out / "vmlinuz", out / "initramfs.gz"
    if kernel.exists() and initrd.exists():
        return kernel, initrd
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        package = _kernel_package()
        subprocess.run(
            ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package, "busybox-static"],  # noqa: E501
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        for deb, into in (
            (next(work.glob(f"{package}_*.deb")), "k"),
            (next(work.glob("busybox-static_*.deb")), "bb"),
        ):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(work / into)], check=True)
        version = next((work / "k" / "lib" / "modules").iterdir()).name
        root = work / "root"
        for sub in ("bin", "proc", "sys", "dev", "tmp", "lib/modules"):
            (root / sub).mkdir(parents=True)
        shutil.copy(work / "bb" / "bin" / "busybox", root / "bin" / "busybox")
        for applet in ("sh", "mount", "insmod", "cat", "echo", "sleep", "cut", "cpio"):
            (root / "bin" / applet).symlink_to("busybox")
        modules = work / "k" / "lib" / "modules" / version / "kernel" / "drivers" / "virtio"
        for module in VIRTIO_MODULES:
            shutil.copy(modules / f"{module}.ko", root / "lib" / "modules")
        (root / "init").write_text(INIT.format(modules=" ".join(VIRTIO_MODULES)))
        (root / "init").chmod(0o755)
        shutil.copy(work / "k" / "boot" / f"vmlinuz-{version}", kernel)
        files = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
        archive = subprocess.run(
            [str(root / "bin" / "busybox"), "cpio", "-o", "-H", "newc"],
            cwd=root, input=files, check=True, capture_output=True,
        ).stdout  # fmt: skip
        initrd.write_bytes(
            subprocess.run(["gzip", "-9"], input=archive, check=True, capture_output=True).stdout
        )
    return kernel, initrd


def _kernel_package() -> str:
    depends = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Depends: (linux-image-\d\S*)", depends)
    if not match:
        raise RuntimeError("cannot resolve the kernel package (run apt-get update first)")
    return match.group(1)


def domain_xml(name: str, memory_mib: int, kernel: Path, initrd: Path, console: Path) -> str:
    return DOMAIN.format(
        name=name, memory_mib=memory_mib, kernel=kernel, initrd=initrd, console=console
    )


def heartbeats(console: Path) -> list[int]:
    try:
        return [int(n) for n in re.findall(r"HEARTBEAT (\d+)", console.read_text(errors="replace"))]
    except FileNotFoundError:
        return []


def boots(console: Path) -> int:
    try:
        return console.read_text(errors="replace").count("GUEST-BOOTED")
    except FileNotFoundError:
        return 0
