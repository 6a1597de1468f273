"""A real Prometheus server for tests: Debian's ``prometheus`` on a loopback port, scraping
every second with the shipped example configuration and rules, stopped afterwards."""

from __future__ import annotations

import math
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.dashboard_queries import PROMETHEUS_DIR
from tests.lab_cluster import wait_for
from tests.service_harness import free_port


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}{path}", params=params, timeout=30).json()
        assert reply["status"] == "success", reply
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.get("/api/v1/query", query=expr)["result"]
        return result

    def has_numbers(self, expr: str) -> bool:
        """At least one series with a finite value now."""
        return any(math.isfinite(float(s["value"][1])) for s in self.query(expr))


@contextmanager
def prometheus(workdir: Path, scheduler: str, agents: list[str]) -> Iterator[Prometheus]:
    """Prometheus scraping ``scheduler`` and ``agents`` (HOST:PORT) as the shipped
    ``prometheus.yml`` does, with the shipped rules, evaluated every second."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
    targets = {"vmpack-scheduler": [scheduler], "vmpack-agent": agents}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (workdir / "prometheus.log").open("w") as log:
        process = subprocess.Popen(
            ["prometheus", f"--config.file={workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        wait_for(lambda: _ready(server.url), 30, "Prometheus to be ready")
        yield server
    finally:
        process.terminate()
        process.wait(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
