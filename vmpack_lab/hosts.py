"""Several independent libvirtd "hosts" on one machine, for tests and demos.

Each host is a real ``libvirtd --listen`` in its own mount and UTS namespace, with its own
config, state and run directories (bind-mounted over /etc/libvirt and friends inside the
namespace, so the machine's own libvirt is never touched), its own ``host_uuid`` (libvirt
refuses to migrate between hosts with equal UUIDs), its own TCP port and QEMU migration port
range. QEMU runs as root without cgroups or virtlogd, which this kind of machine lacks.

The lab must never harm the machine it runs on. Everything started is stopped by pid, never
by name, and only once the process behind the pid is checked to be ours: its command line
names this host's pid file (libvirtd) or the guest (QEMU), and it started before its pid file
was written, so a pid reused by another process is left alone. A libvirtd that starts
reconnects to every guest its ``run/qemu`` status names and, when that QEMU is gone, stops it
by the pid recorded there; a host that really lost power boots with an empty ``/run``, so the
status of guests whose QEMU is not running is cleared before libvirtd starts (and after it
stops).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import libvirt

# Polling a daemon that is still starting fails on purpose; libvirt would print each failure.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

MOUNTS = {
    "etc": "/etc/libvirt",
    "run": "/run/libvirt",
    "lib": "/var/lib/libvirt",
    "cache": "/var/cache/libvirt",
    "log": "/var/log/libvirt",
}


@dataclass(frozen=True)
class LabHost:
    name: str
    base: Path
    port: int
    migration_port_min: int
    address: str = "127.0.0.1"

    @property
    def root(self) -> Path:
        return self.base / self.name

    @property
    def uri(self) -> str:
        return f"qemu+tcp://{self.address}:{self.port}/system"

    @property
    def host_uuid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{self.name}.vmpack-lab"))


def ensure_qemu_user() -> None:
    """libvirtd's QEMU driver resolves its compiled-in user at start, before qemu.conf."""
    if subprocess.run(["getent", "group", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(["groupadd", "-r", "libvirt-qemu"], check=True)
    if subprocess.run(["getent", "passwd", "libvirt-qemu"], capture_output=True).returncode:
        subprocess.run(
            [
                "useradd",
                "-r",
                "-g",
                "libvirt-qemu",
                "-d",
                "/var/lib/libvirt",
                "-s",
                "/usr/sbin/nologin",
                "libvirt-qemu",
            ],
            check=True,
        )


def _write_config(host: LabHost) -> None:
    for sub in (*MOUNTS, "etc/qemu", "log/qemu"):
        (host.root / sub).mkdir(parents=True, exist_ok=True)
    (host.root / "etc" / "libvirtd.conf").write_text(
        "listen_tls = 0\nlisten_tcp = 1\n"
        f'listen_addr = "{host.address}"\ntcp_port = "{host.port}"\n'
        'auth_tcp = "none"\nauth_unix_rw = "none"\nunix_sock_group = "root"\n'
        f'unix_sock_rw_perms = "0770"\nhost_uuid = "{host.host_uuid}"\n'
        f'log_outputs = "2:file:{host.root}/libvirtd.log"\n'
    )
    (host.root / "etc" / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
        'security_driver = "none"\nstdio_handler = "file"\ncgroup_controllers = [ ]\n'
        f"migration_port_min = {host.migration_port_min}\n"
        f"migration_port_max = {host.migration_port_min + 31}\n"
    )


def start(host: LabHost, timeout_s: float = 30.0) -> None:
    ensure_qemu_user()
    _write_config(host)
    clear_stale_status(host)
    for target in MOUNTS.values():
        Path(target).mkdir(parents=True, exist_ok=True)
    binds = "\n".join(f"mount --bind {host.root / sub} {target}" for sub, target in MOUNTS.items())
    inner = (
        f"set -e\nhostname {host.name}\nmount --make-rprivate /\n{binds}\n"
        f"exec /usr/sbin/libvirtd --listen -p {host.root / 'libvirtd.pid'}\n"
    )
    with open(host.root / "stdout.log", "wb") as out:
        subprocess.Popen(
            ["unshare", "-m", "-u", "sh", "-c", inner],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            libvirt.open(host.uri).close()
            return
        except libvirt.libvirtError:
            time.sleep(0.1)
    raise RuntimeError(f"{host.name}: libvirtd did not come up; see {host.root}/stdout.log")


def stop(host: LabHost) -> None:
    """Stop this host's guests (QEMU outlives libvirtd), then its libvirtd."""
    for pid_file in _guest_pid_files(host):
        _kill_if(pid_file, _guest_marks(pid_file))
    _kill_if(host.root / "libvirtd.pid", _libvirtd_marks(host), wait_s=10.0)
    clear_stale_status(host)


def kill_guests(host: LabHost) -> list[int]:
    """What a host failure looks like from outside: its guests' QEMU processes die."""
    return [pid for f in _guest_pid_files(host)
            if (pid := _kill_if(f, _guest_marks(f), sig=signal.SIGKILL))]  # fmt: skip


def power_loss(host: LabHost) -> None:
    """The host loses power: libvirtd and every guest die at once, with no word to anyone
    (the agent's last report still shows the guests running)."""
    _kill_if(host.root / "libvirtd.pid", _libvirtd_marks(host), sig=signal.SIGKILL)
    kill_guests(host)


def clear_stale_status(host: LabHost) -> list[str]:
    """Forget the guests whose QEMU is not running (status XML and pid file), as a host that
    boots after a power loss has forgotten them; returns their names."""
    cleared = []
    for pid_file in _guest_pid_files(host):
        if not _owned_pid(pid_file, _guest_marks(pid_file)):
            pid_file.unlink(missing_ok=True)
            pid_file.with_suffix(".xml").unlink(missing_ok=True)
            cleared.append(pid_file.stem)
    return cleared


def _guest_pid_files(host: LabHost) -> list[Path]:
    run = host.root / "run" / "qemu"
    return [f for f in sorted(run.glob("*.pid")) if f.name != "driver.pid"]


def _guest_marks(pid_file: Path) -> tuple[bytes, ...]:
    return b"qemu-system", f"guest={pid_file.stem},".encode()


def _libvirtd_marks(host: LabHost) -> tuple[bytes, ...]:
    return b"libvirtd", str(host.root / "libvirtd.pid").encode()


def _owned_pid(pid_file: Path, marks: tuple[bytes, ...]) -> int:
    """The pid in ``pid_file`` if that process is the one the file speaks of, else 0: its
    command line carries every mark, and it started before the file was last written (a pid
    reused later belongs to a younger process)."""
    try:
        pid = int(pid_file.read_text().strip())
        written = pid_file.stat().st_mtime
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        started = _start_time(pid)
    except (OSError, ValueError):
        return 0
    if pid <= 1 or not all(mark in cmdline for mark in marks):
        return 0
    return pid if started <= written + 1.0 else 0  # boot time is whole seconds


def _start_time(pid: int) -> float:
    """When process ``pid`` started, in seconds since the epoch."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(fields[19])  # field 22 of stat, counted after the command name
    boot = next(
        float(line.split()[1])
        for line in Path("/proc/stat").read_text().splitlines()
        if line.startswith("btime ")
    )
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _kill_if(
    pid_file: Path, marks: tuple[bytes, ...], sig: int = signal.SIGTERM, wait_s: float = 5.0
) -> int:
    pid = _owned_pid(pid_file, marks)
    if not pid:
        return 0  # gone, or the pid was reused by something else: leave it alone
    os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    return pid


def save_lab(hosts: list[LabHost], path: Path) -> None:
    """Where a lab's hosts are, for ``vmpack lab down`` and ``vmpack lab power-off|on``."""
    entries = [
        {"name": h.name, "base": str(h.base), "port": h.port,
         "migration_port_min": h.migration_port_min}
        for h in hosts
    ]  # fmt: skip
    path.write_text(json.dumps(entries))


def load_lab(path: Path) -> list[LabHost]:
    return [
        LabHost(e["name"], Path(e["base"]), e["port"], e["migration_port_min"])
        for e in json.loads(path.read_text())
    ]


def lab_hosts(
    count: int, base: Path, ports: list[int] | None = None, first_migration_port: int = 49152
) -> list[LabHost]:
    """Hosts lab1..labN on ``ports`` (default 16600, 16601, ...), each with 32 migration ports."""
    ports = ports or [16600 + i for i in range(count)]
    return [
        LabHost(f"lab{i + 1}", base, ports[i], first_migration_port + 64 * i) for i in range(count)
    ]
