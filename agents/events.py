"""libvirt's event loop, so agents hear of domain lifecycle changes as they happen.

libvirt delivers events through an event loop that must be registered before the first
connection is opened, and run by a thread of its own. One per process.
"""

from __future__ import annotations

import threading

import libvirt

_started = threading.Lock()
_running = False


def ensure_event_loop() -> None:
    """Register libvirt's default event loop and run it in a daemon thread (once)."""
    global _running
    with _started:
        if _running:
            return
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run, daemon=True, name="libvirt-events")
        thread.start()
        _running = True


def _run() -> None:
    while True:
        libvirt.virEventRunDefaultImpl()
