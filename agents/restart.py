"""Restarting a VM whose host failed: define it here from its last known definition and
start it. Shared storage is assumed (its disks are reachable from this host too), and the
scheduler orders a restart only once the failed host is fenced, so the VM cannot be running
anywhere else."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import libvirt


@dataclass(frozen=True)
class RestartResult:
    ok: bool
    error: str
    seconds: float


def restart(conn: libvirt.virConnect, vm: str, definition: str) -> RestartResult:
    started = time.monotonic()
    try:
        existing = conn.lookupByName(vm)
    except libvirt.libvirtError:
        existing = None
    if existing is not None and existing.isActive():
        return RestartResult(True, "", time.monotonic() - started)  # already running here
    defined_here = existing is None
    try:
        dom = existing or conn.defineXML(definition)
        dom.create()
    except libvirt.libvirtError as exc:
        if defined_here:
            _undefine_quietly(conn, vm)  # leave the host as it was
        return RestartResult(
            False, f"libvirt: {exc.get_error_message()}", time.monotonic() - started
        )
    return RestartResult(True, "", time.monotonic() - started)


def _undefine_quietly(conn: libvirt.virConnect, vm: str) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        conn.lookupByName(vm).undefine()
