"""The host agent's loop: probe libvirt, report to the scheduler, again every interval.

It survives libvirt and scheduler restarts: a failed probe reconnects to libvirt with
exponential backoff, a failed report is retried at the next beat with the newest report (a
scheduler that comes back catches up at once), and nothing in the loop lets an error out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import libvirt

from agents.libvirt_probe import HostReport, probe

log = logging.getLogger("vmpack.agent")


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


@dataclass
class AgentStatus:
    reports_sent: int = 0
    reports_failed: int = 0
    probes_failed: int = 0
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
        self._http = httpx.Client(
            base_url=config.scheduler_url, timeout=10.0, verify=config.ca_file or True,
            headers={"Authorization": f"Bearer {config.token}"},
        )  # fmt: skip

    def run(self) -> None:
        backoff = self.config.interval_s
        while not self.stopping.is_set():
            ok = self.beat()
            backoff = self.config.interval_s if ok else min(self.config.max_backoff_s, backoff * 2)
            self.stopping.wait(backoff)
        self._http.close()

    def stop(self) -> None:
        self.stopping.set()

    def beat(self) -> bool:
        """One probe and one report; False if either failed."""
        report = self._probe()
        return report is not None and self._send(report)

    def _probe(self) -> HostReport | None:
        try:
            if self._conn is None or not self._conn.isAlive():
                self._conn = self.connect(self.config.libvirt_uri)
            return probe(self._conn, self.config.host, self.config.labels)
        except libvirt.libvirtError as exc:
            self._conn = None  # reconnect at the next beat
            self.status.probes_failed += 1
            self.status.last_error = f"libvirt: {exc.get_error_message()}"
            log.warning("probe failed: %s", self.status.last_error)
            return None

    def _send(self, report: HostReport) -> bool:
        try:
            response = self._http.post("/v1/reports", json=report.to_json())
        except httpx.HTTPError as exc:
            return self._failed(f"scheduler: {exc}")
        if response.status_code != 200:
            return self._failed(f"scheduler: {response.status_code} {response.text[:200]}")
        self.status.reports_sent += 1
        return True

    def _failed(self, error: str) -> bool:
        self.status.reports_failed += 1
        self.status.last_error = error
        log.warning("report failed: %s", error)
        return False
