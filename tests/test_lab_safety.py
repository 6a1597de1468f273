"""The lab never harms the machine it runs on: a pid in a lab host's status is acted on only
when the process behind it is the guest the file speaks of, and the status of guests whose
QEMU is gone is cleared before libvirtd could act on it.

Real processes stand in for guests: one that carries a guest's marks on its command line
(as QEMU does), and unrelated ones whose pid a stale file names."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vmpack_lab.hosts import LabHost, clear_stale_status, kill_guests, stop


@contextmanager
def process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def lab_host(tmp_path: Path) -> LabHost:
    host = LabHost("lab1", tmp_path, 16600, 49152)
    (host.root / "run" / "qemu").mkdir(parents=True)
    return host


def status(host: LabHost, guest: str, pid: int, written_at: float | None = None) -> Path:
    pid_file = host.root / "run" / "qemu" / f"{guest}.pid"
    pid_file.write_text(f"{pid}\n")
    pid_file.with_suffix(".xml").write_text("<domstatus/>")
    if written_at is not None:
        os.utime(pid_file, (written_at, written_at))
    return pid_file


def alive(child: subprocess.Popen[bytes]) -> bool:
    return child.poll() is None


def test_a_stale_status_naming_an_unrelated_process_is_cleared_and_the_process_spared(
    tmp_path: Path,
) -> None:
    host = lab_host(tmp_path)
    with process("not-a-guest") as unrelated:
        pid_file = status(host, "g1", unrelated.pid)
        assert kill_guests(host) == []
        stop(host)  # no libvirtd either: nothing to stop, and the status is cleared
        assert alive(unrelated)
        assert not pid_file.exists() and not pid_file.with_suffix(".xml").exists()


def test_a_reused_pid_is_spared_even_when_it_looks_like_the_guest(tmp_path: Path) -> None:
    host = lab_host(tmp_path)
    with process("qemu-system-x86_64", "-name", "guest=g1,debug-threads=on") as younger:
        # The file was written an hour before this process started: its pid was reused.
        pid_file = status(host, "g1", younger.pid, written_at=time.time() - 3600)
        assert clear_stale_status(host) == ["g1"]
        assert alive(younger) and not pid_file.exists()


def test_the_guest_named_by_its_status_is_stopped_and_its_status_kept_while_it_runs(
    tmp_path: Path,
) -> None:
    host = lab_host(tmp_path)
    with (
        process("qemu-system-x86_64", "-name", "guest=g1,debug-threads=on") as guest,
        process("qemu-system-x86_64", "-name", "guest=g2,debug-threads=on") as other_guest,
    ):
        pid_file = status(host, "g1", guest.pid)
        assert clear_stale_status(host) == []  # running: libvirtd must reconnect to it
        assert pid_file.exists()
        # g1's file naming g2's process (a pid reused by another guest) is not g1.
        wrong = status(host, "g1", other_guest.pid)
        assert kill_guests(host) == [] and alive(other_guest)
        status(host, "g1", guest.pid)
        assert kill_guests(host) == [guest.pid]
        guest.wait(5)
        assert clear_stale_status(host) == ["g1"] and not wrong.exists()
