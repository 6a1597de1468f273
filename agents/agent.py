"""The host agent's loop: probe libvirt, report to the scheduler, take its orders.

It survives libvirt and scheduler restarts: a failed probe reconnects to libvirt with
exponential backoff, a failed report is retried at the next beat with the newest report (a
scheduler that comes back catches up at once), and nothing in the loop lets an error out.

Orders are pulled from the scheduler over the authenticated connection the agent opened
itself, so an agent takes orders from its scheduler and from nobody else. Each migration runs
in a thread of its own; an order cancelled meanwhile aborts the libvirt job.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx
import libvirt

from agents.devices import PciOffer
from agents.discard import discard
from agents.libvirt_probe import probe
from agents.migrate import MigrationOrder, Progress, migrate
from agents.report import HostReport
from agents.restart import restart
from agents.scheduler_client import SchedulerClient
from agents.usage import cpu_usage

log = logging.getLogger("vmpack.agent")


def trust(ca_file: str | None) -> ssl.SSLContext | bool:
    """Verify the scheduler against this CA bundle, or against the system's CAs."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


@dataclass
class AgentConfig:
    host: str
    libvirt_uri: str
    scheduler_url: str
    token: str
    interval_s: float = 10.0
    labels: dict[str, str] = field(default_factory=dict)
    max_backoff_s: float = 60.0
    ca_file: str | None = None  # to verify the scheduler's TLS certificate
    advertise_uri: str = ""  # how other hosts' libvirtd reach ours (default: libvirt_uri)
    migration_address: str = ""  # where incoming migration streams connect, if not advertised
    resources: dict[str, int] = field(default_factory=dict)  # what libvirt cannot see
    pci_offers: tuple[PciOffer, ...] = ()  # PCI devices offered to guests, by vendor:product


@dataclass
class AgentStatus:
    reports_sent: int = 0
    reports_failed: int = 0
    probes_failed: int = 0
    migrations_done: int = 0
    migrations_failed: int = 0
    restarts_done: int = 0
    restarts_failed: int = 0
    discards_done: int = 0  # stale copies of VMs restarted elsewhere while this host was down
    discards_failed: int = 0
    last_report_at: float = 0.0
    last_error: str = ""


class Agent:
    def __init__(
        self, config: AgentConfig, connect: Callable[[str], libvirt.virConnect] = libvirt.open
    ) -> None:
        self.config = config
        self.connect = connect
        self.status = AgentStatus()
        self.stopping = threading.Event()
        self._conn: libvirt.virConnect | None = None
        self._previous_probe: tuple[HostReport, float] | None = None  # for CPU usage
        self._lock = threading.Lock()  # the HTTP client is shared with migration threads
        self._running: dict[int, threading.Event] = {}
        self._unsent: dict[int, dict[str, object]] = {}  # outcomes the scheduler did not hear
        self._definitions_sent: dict[str, str] = {}  # domain -> digest the scheduler holds
        self._changed = threading.Event()  # a domain started, stopped, migrated...
        self._watched: libvirt.virConnect | None = None
        self._workers: list[threading.Thread] = []
        # Several schedulers, comma-separated: the requests follow whichever leads.
        self._http = SchedulerClient(config.scheduler_url, config.token, trust(config.ca_file))
        self._epoch_seen = 0  # the newest leader's epoch heard of: older orders are refused

    def run(self) -> None:
        backoff = self.config.interval_s
        while not self.stopping.is_set():
            ok = self.beat()
            backoff = self.config.interval_s if ok else min(self.config.max_backoff_s, backoff * 2)
            self._changed.wait(backoff)  # the next beat comes early when a domain changes
            self._changed.clear()
        self._http.close()

    def stop(self) -> None:
        self.stopping.set()
        self._changed.set()

    def beat(self) -> bool:
        """One probe, one report and a look at the orders; False if the report failed."""
        report = self._probe()
        sent = report is not None and self._send(report)
        if sent:
            self._send_unsent()
            self._take_orders()
        return sent

    def wait_for_migrations(self, timeout_s: float) -> None:
        for worker in list(self._workers):
            worker.join(timeout_s)

    def _take_orders(self) -> None:
        try:
            with self._lock:
                response = self._http.get("/v1/orders", params={"host": self.config.host})
        except httpx.HTTPError as exc:
            self.status.last_error = f"scheduler: {exc}"
            return
        if response.status_code != 200:
            self.status.last_error = f"scheduler: {response.status_code} {response.text[:200]}"
            return
        for order in response.json():
            order_id = int(order["id"])
            epoch = int(order.get("epoch") or 0)
            if order["status"] == "pending" and 0 < epoch < self._epoch_seen:
                # From a scheduler deposed since: it must not move a VM any more.
                refusal = f"order of epoch {epoch}; the leader's is {self._epoch_seen}: refused"
                self._post_order(order_id, {"status": "failed", "error": refusal})
                continue
            if order["status"] == "cancelled" and order_id in self._running:
                self._running[order_id].set()
            elif order["status"] == "pending" and order_id not in self._running:
                self._running[order_id] = threading.Event()
                worker = threading.Thread(target=self._carry_out, args=(order,), daemon=True)
                self._workers.append(worker)
                worker.start()

    def _carry_out(self, order: dict[str, object]) -> None:
        order_id = int(str(order["id"]))
        cancel = self._running[order_id]
        self._post_order(order_id, {"status": "running"})
        conn = self._conn if self._conn is not None else self.connect(self.config.libvirt_uri)
        if order.get("kind") == "restart":
            self._restart(conn, order_id, str(order["vm"]), str(order.get("definition", "")))
            return
        result = migrate(
            conn,
            MigrationOrder(
                order_id, str(order["vm"]), str(order["target_uri"]),
                int(str(order.get("bandwidth_mib_s", 0))), float(str(order.get("timeout_s", 300))),
                str(order.get("migration_address") or "") or None,
            ),
            cancel=cancel,
            on_progress=lambda p: self._post_order(order_id, {"status": "running",
                                                               "progress_pct": _percent(p)}),
        )  # fmt: skip
        state = "succeeded" if result.ok else "failed"
        outcome = {
            "status": state,
            "error": result.error,
            "seconds": round(result.seconds, 3),
            "downtime_ms": result.downtime_ms,
        }
        if result.ok:
            self.status.migrations_done += 1
        else:
            self.status.migrations_failed += 1
        self._post_order(order_id, {k: v for k, v in outcome.items() if v is not None})
        del self._running[order_id]
        report = self._probe()  # the scheduler should see the move at once
        if report is not None:
            self._send(report)

    def _restart(self, conn: libvirt.virConnect, order_id: int, vm: str, definition: str) -> None:
        result = restart(conn, vm, definition)
        if result.ok:
            self.status.restarts_done += 1
            body: dict[str, object] = {"status": "succeeded", "seconds": round(result.seconds, 3)}
        else:
            self.status.restarts_failed += 1
            body = {"status": "failed", "error": result.error}
        self._post_order(order_id, body)
        del self._running[order_id]
        report = self._probe()
        if report is not None:
            self._send(report)

    def _post_order(self, order_id: int, body: dict[str, object]) -> None:
        """Tell the scheduler; an outcome it could not hear is kept and sent again later."""
        try:
            with self._lock:
                response = self._http.post(f"/v1/orders/{order_id}", json=body)
        except httpx.HTTPError as exc:
            self.status.last_error = f"scheduler: {exc}"
            if body.get("status") != "running":
                self._unsent[order_id] = body
            return
        self._unsent.pop(order_id, None)
        if response.status_code != 200:  # refused (e.g. cancelled meanwhile): nothing to retry
            self.status.last_error = f"scheduler: {response.status_code} {response.text[:200]}"

    def _send_unsent(self) -> None:
        for order_id, body in list(self._unsent.items()):
            self._post_order(order_id, body)

    def _probe(self) -> HostReport | None:
        try:
            if self._conn is None or not self._conn.isAlive():
                self._conn = self.connect(self.config.libvirt_uri)
            self._watch(self._conn)
            report = probe(
                self._conn, self.config.host, self.config.labels,
                self.config.advertise_uri or self.config.libvirt_uri,
                self.config.migration_address, self.config.pci_offers, self.config.resources,
            )  # fmt: skip
            return self._with_usage(report, time.monotonic())
        except libvirt.libvirtError as exc:
            self._conn = None  # reconnect at the next beat
            self.status.probes_failed += 1
            self.status.last_error = f"libvirt: {exc.get_error_message()}"
            log.warning("probe failed: %s", self.status.last_error)
            return None

    def _with_usage(self, report: HostReport, at: float) -> HostReport:
        """The report with each domain's CPU usage since the previous probe, if any."""
        previous, self._previous_probe = self._previous_probe, (report, at)
        if previous is None or at <= previous[1]:
            return report
        usage = cpu_usage(previous[0], report, at - previous[1])
        domains = tuple(replace(d, cpu_usage=usage.get(d.name)) for d in report.domains)
        return replace(report, domains=domains)

    def _watch(self, conn: libvirt.virConnect) -> None:
        """Hear of lifecycle events on this connection (needs ``ensure_event_loop`` first)."""
        if self._watched is conn:
            return
        with contextlib.suppress(libvirt.libvirtError):  # a driver without events: beats only
            conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lambda *_: self._changed.set(), None
            )
            self._watched = conn

    def _send(self, report: HostReport) -> bool:
        """Report; a domain's definition goes along only when the scheduler lacks it."""
        digests = {d.name: _digest(d.definition) for d in report.domains}
        try:
            with self._lock:
                known = self._definitions_sent
                domains = tuple(
                    replace(d, definition="") if known.get(d.name) == digests[d.name] else d
                    for d in report.domains
                )
                response = self._http.post(
                    "/v1/reports", json=replace(report, domains=domains).to_json()
                )
                if response.status_code == 200:
                    self._definitions_sent = digests
        except httpx.HTTPError as exc:
            return self._failed(f"scheduler: {exc}")
        if response.status_code != 200:
            return self._failed(f"scheduler: {response.status_code} {response.text[:200]}")
        self.status.reports_sent += 1
        self.status.last_report_at = time.time()
        self._epoch_seen = max(self._epoch_seen, int(response.json().get("epoch") or 0))
        stale = response.json().get("discard", [])
        if stale:
            self._discard([str(vm) for vm in stale])
        return True

    def _discard(self, vms: list[str]) -> None:
        """Copies the scheduler found superseded: their VMs run on another host now."""
        conn = self._conn if self._conn is not None else self.connect(self.config.libvirt_uri)
        for vm in vms:
            error = discard(conn, vm)
            if error:
                self.status.discards_failed += 1
                self.status.last_error = f"discarding {vm}: {error}"
                log.warning("could not discard the stale copy of %s: %s", vm, error)
            else:
                self.status.discards_done += 1
                log.warning("discarded the stale copy of %s: it runs on another host now", vm)
        self._changed.set()  # report again at once: the copies are gone

    def _failed(self, error: str) -> bool:
        self.status.reports_failed += 1
        self.status.last_error = error
        log.warning("report failed: %s", error)
        return False


def _digest(definition: str) -> str:
    return hashlib.sha256(definition.encode()).hexdigest()


def _percent(progress: Progress) -> float:
    """How far the memory copy is; the remaining amount can grow back as pages get dirty."""
    done, left = progress.data_processed_bytes, progress.data_remaining_bytes
    return round(100.0 * done / (done + left), 1) if done + left else 0.0
