"""The shipped dashboards and rules against a real Prometheus scraping a real lab: two
libvirtd hosts with QEMU guests, the scheduler and both agents. After a consolidation with
a real live migration, every PromQL expression of every dashboard panel returns a number,
every recording and alerting rule evaluates without error, and the host variable lists the
lab's hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.model import HaPolicy, Policy
from tests.dashboard_queries import panel_queries, rules
from tests.lab_cluster import agents, lab, wait_for, wait_for_reports
from tests.prometheus_server import prometheus
from tests.service_harness import OPERATOR_TOKEN, WallClock, free_port, running_service
from tests.test_lab import finished_plan

pytestmark = pytest.mark.lab


def test_every_dashboard_query_returns_data_from_a_real_prometheus(tmp_path: Path) -> None:
    layout = [["p1"], ["p2"]]
    agent_ports = [free_port() for _ in layout]
    n_plus_one = Policy(ha=HaPolicy(1))
    with (
        lab(tmp_path / "lab", layout) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock(), policy=n_plus_one) as service,
        agents(service.url, cluster.hosts, metrics_ports=agent_ports),
        prometheus(
            tmp_path / "prometheus",
            service.url.removeprefix("http://"),
            [f"127.0.0.1:{port}" for port in agent_ports],
        ) as server,
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for_reports(ops, hosts=2, vms=2)
        wait_for(lambda: len(server.query("up == 1")) == 3, 30, "the first scrapes")
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5}).json()
        ops.post(f"/v1/plans/{created['id']}/approve")
        ops.post(f"/v1/plans/{created['id']}/apply")
        assert finished_plan(service, created["id"])["status"] == "done"
        wait_for(lambda: server.has_numbers("vmpack:migration_seconds:p95_1h"), 30,
                 "the migration to be scraped and recorded")  # fmt: skip

        queries = panel_queries()
        empty = [q for q in queries if not server.has_numbers(q[2])]
        assert not empty, f"{len(empty)} of {len(queries)} panel queries return no number: {empty}"
        assert server.query('vmpack_active_hosts{job="vmpack-scheduler"}')[0]["value"][1] == "1"
        assert (
            server.query('sum(vmpack_migrations_total{outcome="succeeded"})')[0]["value"][1] == "1"
        )

        loaded = [r for g in server.get("/api/v1/rules")["groups"] for r in g["rules"]]
        assert len(loaded) == len(rules())
        assert all(r["health"] == "ok" for r in loaded), [r for r in loaded if r["health"] != "ok"]
        hosts = server.get("/api/v1/label/host/values", **{"match[]": "vmpack_host_capacity"})
        assert hosts == ["lab1", "lab2"]
