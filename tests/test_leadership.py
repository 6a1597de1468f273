"""Several schedulers on one PostgreSQL database, one leader: the standby answers reads and
sends writes to the leader (307), agents and the command line follow it, a standby takes
over once the leader stops renewing its lease, a deposed leader orders nothing (agents
refuse an order from an older epoch), and a scheduler that loses the store stops leading."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from agents.agent import Agent, AgentConfig
from tests.lab_cluster import wait_for
from tests.libvirt_hosts import Guest, connect, write_host
from tests.postgres_server import PostgresServer, postgres_server
from tests.service_harness import (
    AGENT_TOKEN,
    OPERATOR_TOKEN,
    Service,
    WallClock,
    run_vmpack,
    running_service,
)

LEASE_S = 1.5


OPS = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}


def health(service: Service) -> dict[str, object]:
    answer: dict[str, object] = httpx.get(f"{service.url}/health", timeout=10).json()
    return answer


def agent_of(tmp_path: Path, urls: str) -> Agent:
    uri = write_host(tmp_path, 1, 16, 64, [Guest("web1", 4096, 2), Guest("db1", 8192, 4)])
    conn = connect(uri)
    config = AgentConfig("kvm-01", uri, urls, AGENT_TOKEN)
    return Agent(config, connect=lambda _uri, c=conn: c)


def test_the_standby_reads_redirects_writes_and_takes_over(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    db = postgres.new_database()
    with (
        running_service(db, WallClock(), lease_s=LEASE_S) as first,
        running_service(db, WallClock(), lease_s=LEASE_S) as second,
    ):
        assert health(first)["role"] == "leader" and health(first)["epoch"] == 1
        assert health(second) | {} == {"status": "ok", "role": "standby", "epoch": 1,
                                       "leader": first.url, "reason": f"{first.url} leads in epoch 1"}  # fmt: skip
        refused = httpx.post(f"{second.url}/v1/plans?x=1", json={"goal": "balance"}, headers=OPS)
        assert refused.status_code == 307
        assert refused.headers["location"] == f"{first.url}/v1/plans?x=1"
        assert refused.headers["x-vmpack-leader"] == first.url
        # An agent that knows the standby first reports through the leader all the same.
        agent = agent_of(tmp_path, f"{second.url},{first.url}")
        assert agent.beat()
        assert [h["name"] for h in first.client(OPERATOR_TOKEN).get("/v1/hosts").json()] == [
            "kvm-01"
        ]
        # The standby's reads catch up from the store.
        standby = second.client(OPERATOR_TOKEN)
        wait_for(
            lambda: len(standby.get("/v1/vms").json()) == 2, 10, "the standby to read the report"
        )
        # The command line too: a rule added through the standby lands at the leader.
        token = tmp_path / "operator.token"
        token.write_text(OPERATOR_TOKEN)
        added = run_vmpack(f"{second.url},{first.url}", token, "rules", "add",
                           "{type: anti-affinity, vms: [web1, db1]}")  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert len(first.client(OPERATOR_TOKEN).get("/v1/rules").json()) == 1

        # The leader stops renewing (as if frozen): it stops acting within two thirds of the
        # lease, and the standby leads once the lease has run out.
        first.runtime.leadership._ticker.stop()
        stopped = time.monotonic()
        wait_for(lambda: not first.runtime.leadership.leads(), 5, "the old leader to stop")
        wait_for(lambda: health(second)["role"] == "leader", 10, "the standby to take over")
        took = time.monotonic() - stopped
        assert took < 3 * LEASE_S, took  # lease + a renewal period, with room for load
        assert health(second)["epoch"] == 2
        assert health(first)["role"] == "standby"
        # A move the deposed leader might still order carries epoch 1: the agent, which has
        # heard of epoch 2 since, refuses it.
        plan = second.store.add_plan("balance", {}, time.time())
        stale = second.store.add_order(plan, "web1", "kvm-01", "kvm-02", time.time(),
                                       {"move": 0, "epoch": 1})  # fmt: skip
        assert agent.beat()
        order = second.store.order(stale)
        assert order is not None and order.status == "failed"
        assert order.error == "order of epoch 1; the leader's is 2: refused"
        metrics = second.client(None).get("/metrics").text
        assert "vmpack_leader 1.0" in metrics and "vmpack_leader_epoch 2.0" in metrics
        assert "vmpack_leader 0.0" in first.client(None).get("/metrics").text


def test_a_scheduler_that_loses_the_store_stops_leading(tmp_path: Path) -> None:
    with postgres_server() as server:
        db = server.new_database()
        with running_service(db, WallClock(), lease_s=LEASE_S) as service:
            assert health(service)["role"] == "leader"
            server.stop()
            wait_for(lambda: health(service)["role"] == "lost", 10, "the lead to be lost")
            answer = httpx.get(f"{service.url}/health", timeout=10)
            assert answer.status_code == 503 and "store unreachable" in answer.json()["reason"]
            assert not service.runtime.leadership.leads()
            refused = httpx.post(f"{service.url}/v1/plans", json={"goal": "balance"}, headers=OPS)
            assert refused.status_code == 503 and refused.json()["error"].startswith("leader: no ")
