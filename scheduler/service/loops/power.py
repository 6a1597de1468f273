"""Host power in the live service (off unless both commands are configured).

- Off: when no plan is running or waiting, the hosts the power advice names (empty, up, and
  not needed for the HA reserve), except those a proposed plan would fill, are switched off
  by the power-off command (``{host}`` in it is the host's name) and marked ``standby``: they
  take no VMs, and their silence is expected, so they are never taken for down nor fenced.
- On: when a placement finds no room, when a failover leaves VMs without room, or when the
  HA reserve no longer holds, the largest standby host is switched on by the power-on command
  and marked ``up``; it takes VMs once its agent reports. Until then, asking again names that
  host rather than waking another, and it is not switched off as empty.

A command that fails leaves the host as it was; the reason is logged and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.ha.power import power_advice
from scheduler.ha.reserve import check_ha
from scheduler.model import Cluster, HostState
from scheduler.service.loops.failover import run_host_command
from scheduler.service.loops.ticker import Ticker
from scheduler.service.store import Store

log = logging.getLogger("vmpack.power")
BUSY = ("approved", "running")


@dataclass(frozen=True)
class PowerPolicy:
    off_command: tuple[str, ...] = ()
    on_command: tuple[str, ...] = ()
    timeout_s: float = 120.0
    max_off_per_tick: int = 4
    wake_s: float = 600.0  # how long a host switched on may take to report; none other wakes

    @property
    def enabled(self) -> bool:
        return bool(self.off_command and self.on_command)


class PowerControl:
    def __init__(
        self,
        store: Store,
        snapshot: Callable[[], Cluster],
        policy: PowerPolicy,
        counted: Callable[[str, str], None],  # (action, outcome)
        clock: Callable[[], float] = time.time,
        set_state: Callable[[str, HostState], None] | None = None,
    ) -> None:
        self.store, self.snapshot, self.policy, self.counted = store, snapshot, policy, counted
        self.clock = clock
        # The service records a host's new state in its inventory and its store alike.
        self.set_state = set_state or store.set_host_state
        self._waking: dict[str, float] = {}  # host switched on -> when, until it reports
        self._lock = threading.Lock()
        self._waking_lock = threading.Lock()
        self._ticker = Ticker("power", self.tick)

    def start(self, tick_s: float) -> None:
        if self.policy.enabled:
            self._ticker.start(tick_s)

    def stop(self) -> None:
        self._ticker.stop()

    def tick(self) -> None:
        if not self.policy.enabled:
            return
        cluster = self.snapshot()
        if cluster.policy.ha.required and not check_ha(cluster).satisfied:
            self.power_on("the HA reserve does not hold")
            return
        plans = self.store.plans()
        if any(p.status in BUSY for p in plans):
            return  # hosts a plan is about to use stay on
        # A proposed plan may still be approved: the hosts it would fill stay on meanwhile.
        wanted = {
            host
            for p in plans
            if p.status == "proposed"
            for host in p.document.get("placement", {}).values()
            if host
        }
        advice = power_advice(cluster, cluster.current_placement)
        waking = self._still_waking()  # empty until they report, but wanted
        idle = [h for h in advice.power_off if h not in wanted and h not in waking]
        for host in idle[: self.policy.max_off_per_tick]:
            self._switch(host, "off", HostState.STANDBY)

    def power_on(self, why: str) -> str | None:
        """Switch on the largest standby host; its name, or None if there is none (or the
        command failed). While a host switched on earlier has not reported yet, that host is
        the answer: asking again before it comes must not wake another."""
        if not self.policy.enabled:
            return None
        with self._waking_lock:  # placements, failover and the reserve may ask at once
            waking = self._still_waking()
            if waking:
                return min(waking)
            cluster = self.snapshot()
            standby = [h for h in cluster.hosts if h.state is HostState.STANDBY]
            for host in sorted(standby, key=lambda h: (-sum(h.capacity.values()), h.name)):
                if self._switch(host.name, "on", HostState.UP):
                    log.warning("powered %s on: %s", host.name, why)
                    self._waking[host.name] = self.clock()
                    return host.name
            return None

    def _still_waking(self) -> set[str]:
        """Hosts switched on that have not reported since (nor given up on after wake_s)."""
        reported, now = self.store.report_times(), self.clock()
        for host, at in list(self._waking.items()):
            if reported.get(host, at - 1) >= at or now - at > self.policy.wake_s:
                self._waking.pop(host, None)
        return set(self._waking)

    def _switch(self, host: str, action: str, state: HostState) -> bool:
        command = self.policy.off_command if action == "off" else self.policy.on_command
        with self._lock:
            ok, detail = run_host_command(
                command, host, self.policy.timeout_s, f"power-{action} command"
            )
            self.counted(action, "succeeded" if ok else "failed")
            if not ok:
                log.warning("power %s %s failed: %s", action, host, detail)
                return False
            self.set_state(host, state)
            return True
