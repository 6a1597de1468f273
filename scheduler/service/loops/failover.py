"""Host failures in the live service: fence a host that went down, then restart its VMs.

A VM must never run twice. A host whose agent went silent may only be cut off from the
network with its VMs still running, so nothing of it is restarted before it is *fenced*: the
configured fencing command (IPMI, Redfish, a script; ``{host}`` in it is the host's name)
exits 0, or an operator confirms the host is off (``POST /v1/hosts/{name}/fenced``). A failed
command is retried every ``retry_s``; the reason is kept for the API and counted in metrics.
A host that reports again loses its fencing record.

Once hosts are fenced and no failover plan is running, the engine decides restarts for the
VMs of the fenced hosts only, highest priority first, and they run as a plan of restart
orders that carries on past single failures. VMs without room wait: the next attempt comes
when the cluster changes, or after ``retry_s``.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from scheduler.engine import plan_to_json
from scheduler.ha.failover import Failover, decide_failover
from scheduler.model import Cluster, HostState
from scheduler.planning.status import PlanStatus
from scheduler.service.checked import add_checked_plan
from scheduler.service.loops.reserve_cache import fingerprint
from scheduler.service.loops.ticker import Ticker
from scheduler.service.records import Fencing
from scheduler.service.store import Store
from scheduler.solver.options import SearchOptions

log = logging.getLogger("vmpack.failover")


@dataclass(frozen=True)
class FencingPolicy:
    command: tuple[str, ...] = ()  # argv, "{host}" replaced; empty: an operator confirms
    timeout_s: float = 60.0
    retry_s: float = 60.0
    # More hosts down at once than this share looks like the scheduler is the one cut off:
    # nothing is fenced automatically then; an operator confirms host by host.
    max_down_share: float = 0.5


def run_host_command(
    command: tuple[str, ...], host: str, timeout_s: float, what: str = "fencing command"
) -> tuple[bool, str]:
    """Run a host command (fencing, power) for ``host``: (succeeded, what happened, in one
    line)."""
    argv = [part.replace("{host}", host) for part in command]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s,
            env={**os.environ, "VMPACK_HOST": host}, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{what}: {exc}"
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        return False, f"{what} exited {done.returncode}: {said[-1] if said else ''}"
    return True, f"{what} succeeded"


class FailoverWatch:
    def __init__(
        self,
        store: Store,
        snapshot: Callable[[], Cluster],
        down_hosts: Callable[[], set[str]],
        clock: Callable[[], float],
        policy: FencingPolicy,
        start_plan: Callable[[int], None],
        on_fencing: Callable[[str], None],
        options: SearchOptions,
    ) -> None:
        self.store, self.snapshot, self.clock, self.policy = store, snapshot, clock, policy
        self.down_hosts = down_hosts
        self.start_plan, self.on_fencing, self.options = start_plan, on_fencing, options
        self.need_room: Callable[[str], object] = lambda _why: None  # e.g. power a host on
        self._ticker = Ticker("failover", self.tick)
        self._last_attempt: tuple[Hashable, float] | None = None

    def start(self, tick_s: float) -> None:
        self._ticker.start(tick_s)

    def stop(self) -> None:
        self._ticker.stop()

    def tick(self) -> None:
        if not self.down_hosts() and not self.store.fencing():
            return  # the usual case, and cheap: the snapshot is built only when needed
        cluster = self.snapshot()
        down = {h.name for h in cluster.hosts if h.state is HostState.DOWN}
        for host in set(self.store.fencing()) - down:
            self.store.clear_fencing(host)  # it reports again
        holding = {v.host for v in cluster.vms if v.host in down}
        too_many = len(down) > self.policy.max_down_share * len(cluster.hosts)
        fencing = self.store.fencing()
        for host in sorted(h for h in holding if h is not None):
            if self._due(fencing.get(host)):
                if too_many:
                    self.store.set_fencing(
                        host, "failed", _cut_off(len(down), cluster), self.clock()
                    )
                else:
                    self._fence(host)
        fencing = self.store.fencing()
        fenced = {h for h in holding if h in fencing and fencing[h].status == "fenced"}
        if fenced and not self._failover_running() and self._worth_trying(cluster):
            self._restart(cluster, fenced, down - fenced)

    def _due(self, record: Fencing | None) -> bool:
        """Never tried, or a failed command whose retry time has come."""
        if record is None:
            return True
        retry = record.status == "failed" and bool(self.policy.command)
        return retry and self.clock() - record.at >= self.policy.retry_s

    def confirm_off(self, host: str) -> None:
        self.store.set_fencing(host, "fenced", "confirmed off by an operator", self.clock())
        self.on_fencing("succeeded")

    def _fence(self, host: str) -> None:
        if not self.policy.command:
            detail = "no fencing command configured: confirm the host is off"
            self.store.set_fencing(host, "failed", detail, self.clock())
            return
        ok, detail = run_host_command(self.policy.command, host, self.policy.timeout_s)
        self.store.set_fencing(host, "fenced" if ok else "failed", detail, self.clock())
        self.on_fencing("succeeded" if ok else "failed")
        log.log(logging.INFO if ok else logging.WARNING, "fencing %s: %s", host, detail)

    def _failover_running(self) -> bool:
        return any(p.goal == "failover" and p.status == "running" for p in self.store.plans())

    def _worth_trying(self, cluster: Cluster) -> bool:
        """Again only if the cluster changed since the last attempt, or after ``retry_s``."""
        key, now = fingerprint(cluster), self.clock()
        last = self._last_attempt
        if last is not None and last[0] == key and now - last[1] < self.policy.retry_s:
            return False
        self._last_attempt = (key, now)
        return True

    def _restart(self, cluster: Cluster, fenced: set[str], unfenced: set[str]) -> None:
        # The VMs of a down host that is not fenced may still run: they stay out of it.
        view = cluster.replace_vms(v for v in cluster.vms if v.host not in unfenced)
        result = decide_failover(view, fenced, self.options)
        if result.not_restarted:
            self.need_room(f"{len(result.not_restarted)} VMs of failed hosts found no room")
        if not result.restarts:
            return
        document = failover_document(plan_to_json(result.outcome), view, result)
        now = self.clock()
        plan_id = add_checked_plan(self.store, "failover", result.outcome, document, now)
        hosts = ", ".join(sorted(fenced))
        self.store.move_plan(
            plan_id, {PlanStatus.PROPOSED}, PlanStatus.RUNNING, now,
            f"running: {hosts} fenced; restarting {len(result.restarts)} VMs",
        )  # fmt: skip
        for _vm, why in sorted(result.not_restarted.items()):
            self.store.add_plan_event(plan_id, now, f"not restarted: {why}")
        self.start_plan(plan_id)


def _cut_off(down: int, cluster: Cluster) -> str:
    return (
        f"{down} of {len(cluster.hosts)} hosts down at once: the scheduler may be the one cut "
        "off; confirm each host is off by hand"
    )


def failover_document(
    document: dict[str, Any], cluster: Cluster, result: Failover
) -> dict[str, Any]:
    """A plan document whose restarts name the failed host each VM ran on (the executor's
    source), and that carries on when one restart fails."""
    for entry in document["placements"]:
        if entry.get("kind") == "restart":
            entry["failed_host"] = cluster.vm_by_name[entry["vm"]].host
    return document | {
        "on_failure": "continue",
        "failed_hosts": list(result.failed_hosts),
        "not_restarted": result.not_restarted,
    }
