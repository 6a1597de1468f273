"""Discarding a stale copy: a VM this host ran before it failed, which has been restarted on
another host since. The host was fenced, so the copy is history; left alone it could be
started again (autostart, an operator) and the VM would run twice. It is stopped if running
and its definition removed here. Disks are never touched: storage is shared with the copy
that runs now."""

from __future__ import annotations

import libvirt


def discard(conn: libvirt.virConnect, vm: str) -> str:
    """Stop and undefine ``vm`` here; returns "" or what went wrong, in one line."""
    try:
        dom = conn.lookupByName(vm)
    except libvirt.libvirtError:
        return ""  # already gone
    try:
        if dom.isActive():
            dom.destroy()
        if dom.isPersistent():
            dom.setAutostart(0)
            dom.undefine()
    except libvirt.libvirtError as exc:
        return f"libvirt: {exc.get_error_message()}"
    return ""
