"""Two schedulers on a real PostgreSQL, a real lab: the leader is killed (kill -9) while a
plan's live migrations run; the standby leads within the lease, adopts the plan and ends it
``done``; no move is ordered twice and every guest runs exactly once, never rebooted. Then
the old leader comes back as a standby, and killing a standby changes nothing."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.lab_cluster import agents, lab, wait_for, wait_for_reports
from tests.postgres_server import PostgresServer
from tests.service_harness import OPERATOR_TOKEN, free_port
from tests.test_postgres_service import serve_command, serving
from vmpack_lab.guest import boots

pytestmark = pytest.mark.lab

LEASE_S = 3
OPS = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def role(url: str) -> str:
    try:
        return str(httpx.get(f"{url}/health", timeout=5).json()["role"])
    except httpx.HTTPError:
        return "down"


def test_kill_9_of_the_leader_mid_plan(tmp_path: Path, postgres: PostgresServer) -> None:
    db = postgres.new_database()
    policy = tmp_path / "policy.yaml"
    policy.write_text("limits: {max_parallel: 1, max_parallel_per_host: 1}\n")
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    commands = [[*serve_command(tmp_path, db, p), "--lease", str(LEASE_S), "--policy",
                 str(policy)] for p in ports]  # fmt: skip
    with (
        lab(tmp_path / "lab", [["m1", "m2", "m3"], [], []]) as cluster,
        serving(commands[0], urls[0]) as leader,
        serving(commands[1], urls[1]),
        agents(",".join(urls), cluster.hosts),
    ):
        assert [role(u) for u in urls] == ["leader", "standby"]
        ops = httpx.Client(base_url=urls[0], headers=OPS, timeout=120)
        wait_for_reports(ops, hosts=3, vms=3)
        created = ops.post("/v1/plans", json={"goal": "evacuate", "hosts": ["lab1"],
                                              "time_limit_s": 5})  # fmt: skip
        assert created.status_code == 201, created.text
        plan_id = created.json()["id"]
        assert created.json()["summary"]["moves"] == 3
        assert ops.post(f"/v1/plans/{plan_id}/approve").status_code == 200
        assert ops.post(f"/v1/plans/{plan_id}/apply").status_code == 200

        def running() -> bool:
            orders = ops.get(f"/v1/plans/{plan_id}").json()["orders"]
            return any(o["status"] == "running" for o in orders)

        wait_for(running, 60, "a migration to run")
        leader.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: role(urls[1]) == "leader", 4 * LEASE_S, "the standby to lead")
        took_over_s = time.monotonic() - killed
        # The lease and one renewal period of the standby, with room for a loaded machine.
        assert took_over_s < 2 * LEASE_S, took_over_s
        standby = httpx.Client(base_url=urls[1], headers=OPS, timeout=120)
        wait_for(lambda: standby.get(f"/v1/plans/{plan_id}").json()["status"] != "running", 180,
                 "the plan to end")  # fmt: skip
        plan = standby.get(f"/v1/plans/{plan_id}").json()
        assert plan["status"] == "done", plan["events"]
        ordered = Counter(o["vm"] for o in plan["orders"])
        assert ordered == {"m1": 1, "m2": 1, "m3": 1}  # no migration ordered twice
        where = cluster.where()
        assert sorted(where) == ["m1", "m2", "m3"]
        assert all(len(h) == 1 and h[0] != "lab1" for h in where.values()), where
        assert all(boots(console) == 1 for console in cluster.consoles.values())

        # The old leader starts again: it stands by; killing it changes nothing.
        epoch = httpx.get(f"{urls[1]}/health").json()["epoch"]
        with serving(commands[0], urls[0]) as again:
            wait_for(lambda: role(urls[0]) == "standby", 30, "the old leader to stand by")
            assert [role(u) for u in urls] == ["standby", "leader"]
            again.send_signal(signal.SIGKILL)
        time.sleep(LEASE_S)
        assert role(urls[1]) == "leader"
        assert httpx.get(f"{urls[1]}/health").json()["epoch"] == epoch
