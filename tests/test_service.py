"""The scheduler service over real HTTP on loopback, with real SQLite and the real agent loop
reading libvirt's test driver."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.agent import Agent, AgentConfig
from agents.libvirt_probe import probe
from scheduler.engine import plan_from_json
from scheduler.model import HaPolicy, HostState, Policy
from scheduler.planning.autopilot import AutomationPolicy
from scheduler.planning.check import check_plan
from scheduler.planning.status import PlanStatus
from scheduler.service.loops.failover import FencingPolicy
from scheduler.service.loops.power import PowerPolicy
from scheduler.service.server import Listen
from tests.lab_cluster import wait_for
from tests.libvirt_hosts import Guest, connect, write_host
from tests.service_harness import (
    AGENT_TOKEN,
    BOUND_TOKEN,
    OPERATOR_TOKEN,
    Clock,
    Service,
    free_port,
    running_service,
)

LAYOUT = [
    [Guest("web1", 4096, 2), Guest("db1", 8192, 4)],
    [Guest("web2", 4096, 2)],
    [Guest("cache1", 2048, 1), Guest("old", 1024, 1, "shutoff")],
]


def agents_for(
    tmp_path: Path, service: Service, layout: list[list[Guest]] = LAYOUT, memory_gib: int = 64
) -> list[Agent]:
    agents = []
    for i, guests in enumerate(layout, start=1):
        uri = write_host(tmp_path, i, 16, memory_gib, guests)
        conn = connect(uri)  # the test driver keeps state per connection: share one
        config = AgentConfig(f"kvm-0{i}", uri, service.url, AGENT_TOKEN, labels={"rack": "r1"})
        agents.append(Agent(config, connect=lambda _uri, c=conn: c))
    return agents


def reported(
    tmp_path: Path, service: Service, layout: list[list[Guest]] = LAYOUT, memory_gib: int = 64
) -> list[Agent]:
    """Agents for ``layout`` that have each reported once."""
    team = agents_for(tmp_path, service, layout, memory_gib)
    for agent in team:
        agent.beat()
    return team


def apply_consolidation(service: Service) -> int:
    """An operator creates a consolidation plan, approves and applies it."""
    ops = service.client(OPERATOR_TOKEN)
    created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3}).json()
    ops.post(f"/v1/plans/{created['id']}/approve")
    ops.post(f"/v1/plans/{created['id']}/apply")
    return int(created["id"])


def settle(team: list[Agent], done: Callable[[], bool], what: str) -> None:
    """Let the agents report and carry out their orders until ``done``."""

    def step() -> bool:
        for agent in team:
            agent.beat()
            agent.wait_for_migrations(10)
        return done()

    wait_for(step, 60, what)


def test_agents_report_and_operator_plans(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        assert all(agent.beat() for agent in agents_for(tmp_path, service))
        ops = service.client(OPERATOR_TOKEN)
        hosts = ops.get("/v1/hosts").json()
        assert [(h["name"], h["state"], h["vms"]) for h in hosts] == [
            ("kvm-01", "up", 2),
            ("kvm-02", "up", 1),
            ("kvm-03", "up", 1),
        ]
        assert sorted(v["name"] for v in ops.get("/v1/vms").json()) == [
            "cache1",
            "db1",
            "web1",
            "web2",
        ]

        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5})
        assert created.status_code == 201
        summary = created.json()["summary"]
        assert (summary["active_hosts_before"], summary["active_hosts_after"]) == (3, 1)
        plan_id = created.json()["id"]
        document = ops.get(f"/v1/plans/{plan_id}").json()
        assert document["status"] == "proposed"
        # The stored plan passes the independent checker against the same snapshot.
        from scheduler.service.inventory import snapshot

        reports = [r for r, _ in service.store.reports()]
        assert check_plan(snapshot(reports).cluster, plan_from_json(document["plan"])) == []

        assert ops.post(f"/v1/plans/{plan_id}/approve").json()["status"] == "approved"
        again = ops.post(f"/v1/plans/{plan_id}/approve")
        assert (
            again.status_code == 409
            and again.json()["error"] == "status: cannot approve a plan that is approved"
        )
        assert ops.post(f"/v1/plans/{plan_id}/cancel").json()["status"] == "cancelled"
        events = [e["event"] for e in ops.get(f"/v1/plans/{plan_id}").json()["events"]]
        assert events == ["proposed", "approved", "cancelled"]


def test_placement_of_a_new_vm(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        answer = ops.post("/v1/placements", json={"name": "new1", "vcpus": 2, "memory": "8GiB"})
        assert answer.status_code == 200 and answer.json()["host"] in ("kvm-01", "kvm-02", "kvm-03")
        too_big = ops.post(
            "/v1/placements", json={"name": "huge", "vcpus": 2, "memory": "63GiB"}
        )  # most free: 62 GiB on kvm-03
        assert too_big.status_code == 409
        assert too_big.json()["error"].startswith("no host: huge (needs 2 vcpus, 63.0 GiB memory)")
        taken = ops.post("/v1/placements", json={"name": "web1", "vcpus": 1, "memory": "1GiB"})
        assert (
            taken.status_code == 409 and taken.json()["error"] == "name: VM 'web1' already exists"
        )


def test_security_refusals_change_nothing(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        report = probe(
            connect(write_host(tmp_path, 1, 8, 32, [Guest("a", 1024)])), "kvm-01"
        ).to_json()
        anonymous, agent, ops = (
            service.client(None),
            service.client(AGENT_TOKEN),
            service.client(OPERATOR_TOKEN),
        )
        wrong = service.client("not-a-known-token-at-all")
        assert anonymous.post("/v1/reports", json=report).status_code == 401
        assert wrong.post("/v1/reports", json=report).status_code == 401
        assert ops.post("/v1/reports", json=report).status_code == 403  # operators do not report
        assert agent.get("/v1/hosts").status_code == 403  # agents do not read the inventory
        assert agent.post("/v1/plans", json={"goal": "consolidate"}).status_code == 403
        assert anonymous.get("/v1/plans").status_code == 401
        bad = dict(report, cpus=-4)
        refused = agent.post("/v1/reports", json=bad)
        assert refused.status_code == 422 and refused.json()["error"].startswith("cpus: ")
        extra = agent.post("/v1/reports", json=dict(report, cpu=4))
        assert extra.json()["error"] == "cpu: unknown field"
        nested = dict(report, domains=[dict(report["domains"][0], state="dancing")])
        assert (
            agent.post("/v1/reports", json=nested).json()["error"].startswith("domains.0.state: ")
        )
        huge = agent.post(
            "/v1/reports", content=b"x" * (9 * 2**20), headers={"Content-Type": "application/json"}
        )
        assert huge.status_code == 413
        assert service.store.reports() == [] and service.store.plans() == []
        plan = ops.post("/v1/plans", json={"goal": "evacuate", "hosts": ["nope"]})
        assert plan.status_code == 422 and plan.json()["error"] == "hosts: unknown host 'nope'"
        assert ops.post("/v1/plans", json={"goal": "shuffle"}).json()["error"].startswith("goal: ")
        assert service.store.plans() == []


def test_heartbeats_make_hosts_suspect_then_down(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        agents = reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        service.clock.now += 40  # past suspect_after (30 s); kvm-01 reports again, others not
        agents[0].beat()
        states = {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}
        assert states == {"kvm-01": "up", "kvm-02": "suspect", "kvm-03": "suspect"}
        service.clock.now += 100  # kvm-02 and kvm-03 silent for 140 s > down_after (120 s)
        agents[0].beat()
        states = {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}
        assert states == {"kvm-01": "up", "kvm-02": "down", "kvm-03": "down"}
        metrics = ops.get("/metrics").text
        assert 'vmpack_hosts{state="down"} 2.0' in metrics
        assert 'vmpack_host_state{host="kvm-02",state="down"} 1.0' in metrics
        assert 'vmpack_host_state{host="kvm-01",state="down"} 0.0' in metrics
        assert 'vmpack_reports_received_total{outcome="accepted"} 5.0' in metrics
        # A plan never targets hosts that are down: their VMs wait for a host (restart).
        created = ops.post("/v1/plans", json={"goal": "place", "time_limit_s": 5}).json()
        placements = ops.get(f"/v1/plans/{created['id']}").json()["plan"]["placements"]
        assert {p["to"] for p in placements} == {"kvm-01"}


def test_restart_loses_nothing_and_agent_catches_up(tmp_path: Path, store_url: str) -> None:
    db, port = store_url, free_port()
    with running_service(db, port=port) as service:
        agents = agents_for(tmp_path, service)
        agents[0].beat()
        ops = service.client(OPERATOR_TOKEN)
        plan_id = ops.post("/v1/plans", json={"goal": "balance", "time_limit_s": 2}).json()["id"]
    assert not agents[0].beat()  # scheduler gone: the agent records it and carries on
    assert agents[0].status.reports_failed == 1 and "scheduler" in agents[0].status.last_error
    with running_service(db, port=port) as service:
        ops = service.client(OPERATOR_TOKEN)
        assert ops.get(f"/v1/plans/{plan_id}").json()["status"] == "proposed"
        assert [h["name"] for h in ops.get("/v1/hosts").json()] == ["kvm-01"]
        assert agents[0].beat() and agents[0].status.reports_sent == 2


def test_plain_http_only_on_loopback() -> None:
    with pytest.raises(ValueError, match="plain HTTP is only served on loopback"):
        Listen("0.0.0.0", 8700).check()
    Listen("0.0.0.0", 8700, allow_plain_http=True).check()
    Listen("::1", 8700).check()


def test_openapi_describes_the_api(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        spec = service.client(None).get("/openapi.json").json()
        assert {"/v1/reports", "/v1/hosts", "/v1/plans", "/v1/placements", "/health"} <= set(
            spec["paths"]
        )


def test_operator_cli_against_a_running_scheduler(tmp_path: Path) -> None:
    import subprocess
    import sys

    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN + "\n")
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)

        def vmpack(*args: str, token_file: Path = token) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "scheduler.cli.main", *args, "--scheduler", service.url,
                       "--token-file", str(token_file)]  # fmt: skip
            return subprocess.run(command, capture_output=True, text=True, timeout=120)

        hosts = vmpack("hosts")
        assert hosts.returncode == 0 and all(f"kvm-0{i}" in hosts.stdout for i in (1, 2, 3))
        assert "db1" in vmpack("vms").stdout
        created = vmpack("plans", "create", "--goal", "consolidate", "--time-limit", "3")
        assert created.returncode == 0, created.stderr
        assert created.stdout.startswith("plan 1 proposed: 3 -> 1 hosts, ")
        assert vmpack("plans", "approve", "1").stdout.strip() == "plan 1: approved"
        assert "plan 1 (consolidate): approved" in vmpack("plans", "show", "1").stdout
        again = vmpack("plans", "approve", "1")
        assert again.returncode == 2
        assert (
            again.stderr == "vmpack: error: 409: status: cannot approve a plan that is approved\n"
        )
        unknown = vmpack("maintenance", "enter", "kvm-09")
        assert unknown.returncode == 2 and "host: unknown host 'kvm-09'" in unknown.stderr
        back = vmpack("maintenance", "exit", "kvm-02")
        assert back.returncode == 0 and back.stdout == "kvm-02: up; it takes VMs again\n"
        wrong = tmp_path / "wrong.token"
        wrong.write_text("someone-else-entirely-0000\n")
        refused = vmpack("hosts", token_file=wrong)
        assert refused.returncode == 2 and "401: authorization: unknown token" in refused.stderr
        url = service.url
    gone = subprocess.run([sys.executable, "-m", "scheduler.cli.main", "hosts", "--scheduler", url,
                           "--token-file", str(token)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert gone.returncode == 1 and gone.stderr.startswith(f"vmpack: error: scheduler {url}")


def test_tls_with_the_operators_certificate(tmp_path: Path) -> None:
    import subprocess

    import httpx

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=scheduler",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with running_service(tmp_path / "vmpack.db", tls=(cert, key)) as service:
        assert service.url.startswith("https://")
        uri = write_host(tmp_path, 1, 8, 32, [Guest("a", 1024)])
        conn = connect(uri)
        config = AgentConfig("kvm-01", uri, service.url, AGENT_TOKEN, ca_file=str(cert))
        assert Agent(config, connect=lambda _u: conn).beat()  # verified against our CA file
        untrusting = Agent(
            AgentConfig("kvm-01", uri, service.url, AGENT_TOKEN), connect=lambda _u: conn
        )
        assert not untrusting.beat() and "CERTIFICATE_VERIFY_FAILED" in untrusting.status.last_error
        plain = service.url.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):
            httpx.get(plain + "/health", timeout=5)


def test_a_bound_agent_token_acts_for_its_host_only(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        bound = service.client(BOUND_TOKEN)
        mine = probe(
            connect(write_host(tmp_path, 1, 8, 32, [Guest("a", 1024)])), "kvm-01"
        ).to_json()
        other = probe(
            connect(write_host(tmp_path, 2, 8, 32, [Guest("b", 1024)])), "kvm-02"
        ).to_json()
        assert bound.post("/v1/reports", json=mine).status_code == 200
        refused = bound.post("/v1/reports", json=other)
        assert (
            refused.status_code == 403
            and refused.json()["error"] == "host: this token reports for kvm-01 only"
        )
        assert [r.host for r, _ in service.store.reports()] == ["kvm-01"]
        assert bound.get("/v1/orders", params={"host": "kvm-02"}).status_code == 403
        assert bound.get("/v1/orders", params={"host": "kvm-01"}).json() == []
        metrics = service.client(None).get("/metrics").text
        assert 'vmpack_reports_received_total{outcome="rejected"} 1.0' in metrics


def test_agents_report_each_vms_cpu_usage_from_their_second_probe_on(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        team = reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        assert all(v["usage"] == {} for v in ops.get("/v1/vms").json())  # one probe: no interval
        assert all(agent.beat() for agent in team)
        usage = {v["name"]: v["usage"] for v in ops.get("/v1/vms").json()}
        assert sorted(usage) == ["cache1", "db1", "web1", "web2"]
        assert all(0.0 <= u["cpu"] <= 1.0 for u in usage.values()), usage


def test_agent_reports_at_once_when_a_domain_changes(tmp_path: Path) -> None:
    import threading

    from agents.events import ensure_event_loop

    ensure_event_loop()  # before the connection is opened
    uri = write_host(tmp_path, 1, 8, 32, [Guest("a", 1024), Guest("b", 1024)])
    conn = connect(uri)
    with running_service(tmp_path / "vmpack.db") as service:
        config = AgentConfig("kvm-01", uri, service.url, AGENT_TOKEN, interval_s=3600.0)
        agent = Agent(config, connect=lambda _u: conn)
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        ops = service.client(OPERATOR_TOKEN)
        wait_for(lambda: agent.status.reports_sent == 1, 10, "the first report")
        conn.lookupByName("b").destroy()  # an hour before the next beat: only the event tells
        wait_for(lambda: [v["name"] for v in ops.get("/v1/vms").json()] == ["a"], 10, "the event")
        # The service may answer the listing before the agent has counted its own report.
        wait_for(lambda: agent.status.reports_sent >= 2, 10, "the agent counting the report")
        assert agent.status.reports_sent == 2
        agent.stop()
        thread.join(10)


def test_agent_serves_its_own_metrics(tmp_path: Path) -> None:
    import httpx

    from agents.metrics import serve_metrics

    uri = write_host(tmp_path, 1, 8, 32, [Guest("a", 1024)])
    conn = connect(uri)
    with running_service(tmp_path / "vmpack.db") as service:
        agent = Agent(AgentConfig("kvm-01", uri, service.url, AGENT_TOKEN), connect=lambda _u: conn)
        port = free_port()
        server = serve_metrics(agent, "127.0.0.1", port)
        agent.beat()
        agent.beat()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        server.shutdown()
        assert 'vmpack_agent_reports_total{outcome="sent"} 2.0' in text
        assert 'vmpack_agent_migrations_total{outcome="failed"} 0.0' in text
        assert "vmpack_agent_last_report_timestamp_seconds" in text


@pytest.mark.parametrize(("policy", "attempted"), [("stop", 1), ("continue", 2)])
def test_failed_migrations_stop_or_continue_the_plan(
    tmp_path: Path, policy: str, attempted: int
) -> None:
    # libvirt's test driver cannot migrate: every order fails for real, in libvirt.
    from scheduler.model import Limits
    from scheduler.service.executor import ExecutionPolicy

    one_at_a_time = Limits(max_parallel=1, max_parallel_per_host=1)
    execution = ExecutionPolicy(on_failure=policy, tick_s=0.1)
    with running_service(
        tmp_path / "vmpack.db", execution=execution, limits=one_at_a_time
    ) as service:
        team = reported(tmp_path, service)  # kvm-02 and kvm-03 hold one VM each: two moves
        ops = service.client(OPERATOR_TOKEN)
        plan_id = apply_consolidation(service)
        settle(
            team, lambda: ops.get(f"/v1/plans/{plan_id}").json()["status"] != "running", "the plan"
        )
        plan = ops.get(f"/v1/plans/{plan_id}").json()
        assert plan["status"] == "failed"
        orders = plan["orders"]
        assert len(orders) == attempted and all(o["status"] == "failed" for o in orders)
        assert all(o["error"].startswith("libvirt: ") for o in orders)
        # Each VM is still where it was: the agents checked libvirt after the attempt.
        where = {v["name"]: v["host"] for v in ops.get("/v1/vms").json()}
        assert where == {"web1": "kvm-01", "db1": "kvm-01", "web2": "kvm-02", "cache1": "kvm-03"}
        failed = f'vmpack_migrations_total{{outcome="failed"}} {float(attempted)}'
        assert failed in ops.get("/metrics").text


def test_ha_reserve_and_solver_metrics(tmp_path: Path) -> None:
    one_rack = Policy(ha=HaPolicy(1, "rack"))  # every host is in rack r1
    with running_service(tmp_path / "vmpack.db", policy=one_rack) as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        metrics = ops.get("/metrics").text
        # Any one host's VMs restart on the other two; losing the rack loses all four VMs.
        assert "vmpack_ha_reserve_satisfied 0.0" in metrics
        assert "vmpack_ha_failures_stranding_vms 1.0" in metrics
        assert "vmpack_ha_stranded_vms 4.0" in metrics
        assert "vmpack_ha_hosts_short 1.0" in metrics  # 19 GiB: one more 64 GiB host holds them
        assert (
            "vmpack_empty_hosts 0.0" in metrics
            and "vmpack_running_plan_idle_seconds 0.0" in metrics
        )
        ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5})
        metrics = ops.get("/metrics").text
        assert 'vmpack_plans_created_total{goal="consolidate"} 1.0' in metrics
        assert 'vmpack_solver_gap_ratio{goal="consolidate"} 0.0' in metrics  # 1 host, bound 1
        assert 'vmpack_solver_time_limit_reached_total{goal="consolidate"} 0.0' in metrics


def kill_kvm_03(service: Service, agents: list[Agent]) -> None:
    """kvm-03 falls silent past the down threshold while the others keep reporting; then
    the failover watch looks (these tests tick it by hand: the clock jumps)."""
    for agent in agents:
        agent.beat()
    service.clock.now += 200
    for agent in agents[:2]:
        agent.beat()
    service.failover.tick()


def hosts_by_name(service: Service) -> dict[str, Any]:
    return {h["name"]: h for h in service.client(OPERATOR_TOKEN).get("/v1/hosts").json()}


def failover_plans(service: Service) -> list[Any]:
    return [p for p in service.store.plans() if p.goal == "failover"]


def finish_restarts(service: Service, agents: list[Agent]) -> Any:
    def done() -> bool:
        service.failover.tick()
        for agent in agents[:2]:
            agent.beat()
            agent.wait_for_migrations(10)
        plans = failover_plans(service)
        return bool(plans) and plans[-1].status != "running"

    wait_for(done, 30, "the failover plan")
    return failover_plans(service)[-1]


def test_failed_fencing_restarts_nothing_until_an_operator_confirms(tmp_path: Path) -> None:
    refuse = FencingPolicy(("sh", "-c", "echo 'BMC {host}-bmc unreachable' >&2; exit 3"))
    with running_service(tmp_path / "vmpack.db", fencing=refuse, failover_tick_s=3600) as service:
        agents = agents_for(tmp_path, service)
        kill_kvm_03(service, agents)
        fencing = hosts_by_name(service)["kvm-03"]["fencing"]
        assert fencing["status"] == "failed"
        assert fencing["detail"] == "fencing command exited 3: BMC kvm-03-bmc unreachable"
        for _ in range(3):
            service.failover.tick()
        assert failover_plans(service) == []  # never restarted while it may still run
        metrics = service.client(None).get("/metrics").text
        assert 'vmpack_fencing_total{outcome="failed"} 1.0' in metrics
        assert (
            "vmpack_hosts_fencing_failed 1.0" in metrics
            and "vmpack_vms_on_down_hosts 1.0" in metrics
        )
        ops = service.client(OPERATOR_TOKEN)
        assert ops.post("/v1/hosts/kvm-01/fenced").status_code == 409  # up: cannot be fenced
        assert ops.post("/v1/hosts/kvm-09/fenced").status_code == 404
        assert ops.post("/v1/hosts/kvm-03/fenced").json() == {"name": "kvm-03", "fencing": "fenced"}
        plan = finish_restarts(service, agents)
        assert plan.status == "done", service.store.plan_events(plan.id)
        where = {v["name"]: v["host"] for v in ops.get("/v1/vms").json()}
        assert where["cache1"] in ("kvm-01", "kvm-02")
        [order] = service.store.orders(plan_id=plan.id)
        assert (order.vm, order.source, order.kind, order.status) == (
            "cache1",
            "kvm-03",
            "restart",
            "succeeded",
        )
        metrics = service.client(None).get("/metrics").text
        assert 'vmpack_restarts_total{outcome="succeeded"} 1.0' in metrics
        assert "vmpack_vms_on_down_hosts 0.0" in metrics


def test_a_fenced_hosts_vms_restart_by_themselves(tmp_path: Path) -> None:
    fenced = tmp_path / "fenced.txt"
    fence = FencingPolicy(("sh", "-c", f"echo {{host}} >> {fenced}"))
    with running_service(tmp_path / "vmpack.db", fencing=fence, failover_tick_s=3600) as service:
        agents = agents_for(tmp_path, service)
        kill_kvm_03(service, agents)
        plan = finish_restarts(service, agents)
        assert fenced.read_text() == "kvm-03\n"  # fenced once, before anything restarted
        assert plan.status == "done" and plan.document["failed_hosts"] == ["kvm-03"]
        events = [e for _, e in service.store.plan_events(plan.id)]
        assert "running: kvm-03 fenced; restarting 1 VMs" in events
        agents[2].beat()  # kvm-03 comes back: its fencing record goes
        service.failover.tick()
        assert hosts_by_name(service)["kvm-03"]["fencing"] is None


def test_maintenance_refuses_before_anything_moves_when_a_vm_cannot_leave(tmp_path: Path) -> None:
    import subprocess
    import sys

    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN + "\n")
    full = [[Guest("big1", 6144, 2)], [Guest("big2", 6144, 2)]]  # 8 GiB hosts: no room to move
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service, full, memory_gib=8)
        command = [sys.executable, "-m", "scheduler.cli.main", "maintenance", "enter", "kvm-01",
                   "--scheduler", service.url, "--token-file", str(token), "--time-limit", "5"]  # fmt: skip
        run = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, run.stderr
        assert run.stdout.splitlines()[0].startswith(
            "cannot leave: big1 (needs 2 vcpus, 6.0 GiB memory"
        )
        assert "kvm-01: nothing moved, the host stays up" in run.stdout
        assert hosts_by_name(service)["kvm-01"]["state"] == "up"
        assert [p.status for p in service.store.plans()] == ["cancelled"]
        assert service.store.orders() == []


def test_no_host_is_fenced_when_the_scheduler_itself_looks_cut_off(tmp_path: Path) -> None:
    fenced = tmp_path / "fenced.txt"
    fence = FencingPolicy(("sh", "-c", f"echo {{host}} >> {fenced}"))
    db, clock = tmp_path / "vmpack.db", Clock()
    with running_service(db, clock, fencing=fence, failover_tick_s=3600) as service:
        reported(tmp_path, service)
        clock.now += 200  # no host has reported for 200 s: all three are down at once
        service.failover.tick()
        fencing = {
            h: f["detail"]
            for h, f in ((n, h["fencing"]) for n, h in hosts_by_name(service).items())
            if f
        }
        assert set(fencing) == {"kvm-01", "kvm-02", "kvm-03"} and not fenced.exists()
        assert fencing["kvm-01"].startswith("3 of 3 hosts down at once: the scheduler may be")
    clock.now += 60  # the scheduler restarts: hosts get the full down time to report again
    with running_service(db, clock, fencing=fence, failover_tick_s=3600) as service:
        assert {h["state"] for h in hosts_by_name(service).values()} == {"up"}
        service.failover.tick()
        assert all(h["fencing"] is None for h in hosts_by_name(service).values())


def test_placement_api_refuses_a_vm_when_the_ha_reserve_does_not_hold(tmp_path: Path) -> None:
    one_rack = Policy(ha=HaPolicy(0, "rack"))  # losing the only rack loses everything
    with running_service(tmp_path / "vmpack.db", policy=one_rack) as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        refused = ops.post("/v1/placements", json={"name": "new1", "vcpus": 1, "memory": "1GiB"})
        assert refused.status_code == 409
        assert refused.json()["error"] == (
            "no host: new1: the HA reserve does not hold already (losing rack=r1 strands VMs)"
        )
    with running_service(tmp_path / "other.db", policy=Policy(ha=HaPolicy(1))) as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        placed = ops.post("/v1/placements", json={"name": "new1", "vcpus": 1, "memory": "1GiB"})
        assert placed.status_code == 200 and placed.json()["host"].startswith("kvm-0")
        too_big = ops.post("/v1/placements", json={"name": "new2", "vcpus": 8, "memory": "62GiB"})
        assert too_big.status_code == 409
        assert too_big.json()["error"].startswith(
            "no host: new2: placing it would break the HA reserve"
        )


def test_a_vm_already_where_the_plan_sends_it_is_not_counted_as_a_migration(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        team = reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3}).json()
        plan = ops.get(f"/v1/plans/{created['id']}").json()["plan"]
        moves = {(m["vm"], m["from"], m["to"]) for m in plan["migrations"]}
        vm, source, target = sorted(moves)[0]
        # Someone moves the VM by hand before the plan runs: define and start it on the
        # target, remove it from the source (the test driver cannot migrate).
        hosts = {a.config.host: a for a in team}
        source_conn, target_conn = hosts[source]._conn, hosts[target]._conn
        assert source_conn is not None and target_conn is not None
        domain = source_conn.lookupByName(vm)
        target_conn.defineXML(domain.XMLDesc(0)).create()
        domain.destroy()
        domain.undefine()
        for agent in team:
            agent.beat()
        ops.post(f"/v1/plans/{created['id']}/approve")
        ops.post(f"/v1/plans/{created['id']}/apply")
        settle(
            team,
            lambda: ops.get(f"/v1/plans/{created['id']}").json()["status"] != "running",
            "the plan",
        )
        events = [e["event"] for e in ops.get(f"/v1/plans/{created['id']}").json()["events"]]
        assert f"{vm} already on {target}" in events
        # The test driver's real migrations fail; the VM moved by hand is no migration of ours.
        assert 'vmpack_migrations_total{outcome="succeeded"} 0.0' in ops.get("/metrics").text


def test_maintenance_refuses_to_break_the_ha_reserve(tmp_path: Path) -> None:
    import subprocess
    import sys

    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN + "\n")
    # 16 GiB hosts with 6 GiB each: N+1 holds on three hosts, not on two.
    three = [[Guest("a", 6144)], [Guest("b", 6144)], [Guest("c", 6144)]]
    with running_service(tmp_path / "vmpack.db", policy=Policy(ha=HaPolicy(1))) as service:
        reported(tmp_path, service, three, memory_gib=16)
        base = [sys.executable, "-m", "scheduler.cli.main", "maintenance", "enter", "kvm-01",
                "--scheduler", service.url, "--token-file", str(token), "--time-limit", "5"]  # fmt: skip
        run = subprocess.run(base, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1, run.stderr
        assert "the HA reserve holds today and would not with kvm-01 empty" in run.stdout
        assert hosts_by_name(service)["kvm-01"]["state"] == "up" and service.store.orders() == []
        forced = subprocess.run(
            [*base, "--ignore-ha", "--no-wait"], capture_output=True, text=True, timeout=120
        )
        assert (
            forced.returncode == 0
            and "kvm-01: maintenance; plan 2 moves 1 VMs off" in forced.stdout
        )


def test_automation_levels(tmp_path: Path) -> None:
    every_10_min = AutomationPolicy("automatic", interval_s=600)
    with running_service(
        tmp_path / "a.db", automation=every_10_min, failover_tick_s=3600
    ) as service:
        reported(tmp_path, service)
        plan_id = service.autopilot.tick()
        assert plan_id is not None
        events = [e for _, e in service.store.plan_events(plan_id)]
        assert events[:3] == ["proposed", "approved automatically", "applied automatically"]
        assert service.store.plan(plan_id).document["by"] == "autopilot"  # type: ignore[union-attr]
        assert service.autopilot.tick() is None  # not again before the interval
    recommend = AutomationPolicy("recommend", interval_s=600)
    with running_service(tmp_path / "r.db", automation=recommend, failover_tick_s=3600) as service:
        reported(tmp_path, service)
        first = service.autopilot.tick()
        assert first is not None and service.store.plan(first).status == "proposed"  # type: ignore[union-attr]
        ops = service.client(OPERATOR_TOKEN)
        ops.post(f"/v1/plans/{first}/approve")
        refused = ops.post(f"/v1/plans/{first}/apply")
        assert refused.status_code == 409
        assert refused.json()["error"] == "automation: level recommend: plans are not carried out"
        service.clock.now += 700
        reported(tmp_path, service)
        assert service.autopilot.tick() is not None
        statuses = {p.id: p.status for p in service.store.plans()}
        assert statuses[first] == "approved"  # an operator's approval is not superseded


def test_a_failed_plan_is_replanned_holding_the_failed_vm(tmp_path: Path) -> None:
    from scheduler.model import Limits
    from scheduler.service.executor import ExecutionPolicy

    replan = ExecutionPolicy(on_failure="replan", tick_s=0.1)
    one_at_a_time = Limits(max_parallel=1, max_parallel_per_host=1)
    with running_service(tmp_path / "vmpack.db", execution=replan, limits=one_at_a_time) as service:
        team = reported(tmp_path, service)  # the test driver cannot migrate: every move fails
        apply_consolidation(service)
        settle(team, lambda: all(p.status != "running" for p in service.store.plans()), "the chain")
        plans = service.store.plans()
        assert len(plans) >= 2 and all(p.status == "failed" for p in plans)
        first_failed = next(
            o.vm for o in service.store.orders(plan_id=plans[0].id) if o.status == "failed"
        )
        second = plans[1].document
        assert second["replan_of"] == plans[0].id and first_failed in second["held"]
        assert first_failed not in {m["vm"] for m in second["migrations"]}
        events = [e for _, e in service.store.plan_events(plans[0].id)]
        assert f"re-planned as plan {plans[1].id}" in events


def test_the_return_goal_takes_one_host_that_is_up(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)
        ops = service.client(OPERATOR_TOKEN)
        missing = ops.post("/v1/plans", json={"goal": "return"})
        assert missing.status_code == 422
        assert missing.json()["error"] == "hosts: required for the evacuate and return goals only"
        two = ops.post("/v1/plans", json={"goal": "return", "hosts": ["kvm-01", "kvm-02"]})
        assert two.json()["error"] == "hosts: the return goal takes one host"
        ops.put("/v1/hosts/kvm-01/state", json={"state": "maintenance"})
        away = ops.post("/v1/plans", json={"goal": "return", "hosts": ["kvm-01"]})
        assert away.status_code == 409
        assert (
            away.json()["error"] == "hosts: kvm-01 is maintenance; it must be up to take VMs back"
        )
        ops.put("/v1/hosts/kvm-01/state", json={"state": "up"})
        nothing = ops.post("/v1/plans", json={"goal": "return", "hosts": ["kvm-01"]}).json()
        assert nothing["summary"]["moves"] == 0 and nothing["not_placed"] == {}  # never evacuated
        assert service.store.plan(nothing["id"]).document["goal"] == "return"  # type: ignore[union-attr]


def test_a_returned_host_discards_its_copies_of_vms_restarted_elsewhere(tmp_path: Path) -> None:
    from agents.restart import restart

    with running_service(tmp_path / "vmpack.db", failover_tick_s=3600) as service:
        team = reported(tmp_path, service)
        one, two = team[0], team[1]
        conn1, conn2 = one.connect(""), two.connect("")
        xml = conn1.lookupByName("web1").XMLDesc()
        # While kvm-01 was fenced, the failover restarted web1 on kvm-02.
        store = service.store
        plan = store.add_plan("failover", {"migrations": [], "placements": []}, at=0.0)
        order = store.add_order(plan, "web1", "kvm-01", "kvm-02", 0.0,
                                {"kind": "restart", "definition": xml})  # fmt: skip
        store.update_order(order, "succeeded", 1.0)
        assert store.superseded("kvm-01") == {"web1"} and store.superseded("kvm-02") == set()
        one.beat()  # back with its old copy; the restarted one is not seen running yet: keep it
        assert one.status.discards_done == 0 and conn1.lookupByName("web1").isActive()
        assert restart(conn2, "web1", xml).ok
        two.beat()
        one.beat()
        assert one.status.discards_done == 1
        assert {d.name() for d in conn1.listAllDomains()} == {"db1"}  # web1 stopped, undefined
        assert conn2.lookupByName("web1").isActive()  # the live copy is untouched
        # Once web1 has migrated back to kvm-01, a copy there is no longer stale.
        back = store.add_order(plan, "web1", "kvm-02", "kvm-01", 2.0, {})
        store.update_order(back, "succeeded", 3.0)
        assert store.superseded("kvm-01") == set()


def test_host_power_off_when_empty_and_on_when_room_is_needed(tmp_path: Path) -> None:
    log = tmp_path / "power.log"
    scripts = {}
    for action in ("off", "on"):
        script = tmp_path / f"power-{action}.sh"
        script.write_text(f"#!/bin/sh\necho {action} $1 >> {log}\n")
        script.chmod(0o755)
        scripts[action] = (str(script), "{host}")
    power = PowerPolicy(scripts["off"], scripts["on"])
    layout = [[Guest("a", 40960, 2)], [Guest("b", 40960, 2)], []]  # kvm-03 is empty
    with running_service(tmp_path / "vmpack.db", power=power, failover_tick_s=3600) as service:
        team = reported(tmp_path, service, layout)
        ops = service.client(OPERATOR_TOKEN)
        service.power.tick()
        assert log.read_text() == "off kvm-03\n"
        states = {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}
        assert states == {"kvm-01": "up", "kvm-02": "up", "kvm-03": "standby"}
        service.clock.now += 600  # kvm-03 is silent: expected, so never down nor fenced
        for agent in team[:2]:
            agent.beat()
        assert {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}["kvm-03"] == "standby"
        assert service.failover.down_hosts() == set()
        metrics = ops.get("/metrics").text
        assert 'vmpack_hosts{state="standby"} 1.0' in metrics
        assert 'vmpack_power_actions_total{action="off",outcome="succeeded"} 1.0' in metrics
        # 40 GiB more fits nowhere on the two hosts on: kvm-03 is switched on.
        asked = ops.post("/v1/placements", json={"name": "big", "vcpus": 2, "memory": "40GiB"})
        assert asked.status_code == 409
        assert "powering kvm-03 on: retry once it reports" in asked.json()["error"]
        assert log.read_text() == "off kvm-03\non kvm-03\n"
        again = ops.post("/v1/placements", json={"name": "big", "vcpus": 2, "memory": "40GiB"})
        assert "powering kvm-03 on" in again.json()["error"]  # the same host: it is coming
        service.power.tick()  # not switched off as empty while it comes
        assert log.read_text() == "off kvm-03\non kvm-03\n"
        team[2].beat()  # its agent reports once the host is up
        placed = ops.post("/v1/placements", json={"name": "big", "vcpus": 2, "memory": "40GiB"})
        assert placed.status_code == 200 and placed.json()["host"] == "kvm-03", placed.text
        service.power.tick()  # kvm-03 is still empty, but the placement holds it on
        assert log.read_text() == "off kvm-03\non kvm-03\n"


def logged_power(tmp_path: Path) -> tuple[PowerPolicy, Path]:
    """Power commands that only write "off HOST" or "on HOST" to a log."""
    log = tmp_path / "power.log"
    script = tmp_path / "power.sh"
    script.write_text(f"#!/bin/sh\necho $1 $2 >> {log}\n")
    script.chmod(0o755)
    return PowerPolicy((str(script), "off", "{host}"), (str(script), "on", "{host}")), log


def test_host_power_keeps_hosts_a_proposed_plan_would_fill(tmp_path: Path) -> None:
    power, log = logged_power(tmp_path)
    layout = [[Guest("a", 40960, 2)], [Guest("b", 40960, 2)], []]
    with running_service(tmp_path / "vmpack.db", power=power, failover_tick_s=3600) as service:
        reported(tmp_path, service, layout)
        plan = service.store.add_plan(
            "balance", {"placement": {"a": "kvm-03", "b": "kvm-02"}, "migrations": []}, at=0.0
        )
        service.power.tick()  # kvm-03 is empty, but the proposed plan would fill it
        assert not log.exists()
        service.store.move_plan(
            plan, {PlanStatus.PROPOSED}, PlanStatus.CANCELLED, 1.0, "cancelled by the operator"
        )
        service.power.tick()
        assert log.read_text() == "off kvm-03\n"


def test_host_power_keeps_the_ha_reserve(tmp_path: Path) -> None:
    power, log = logged_power(tmp_path)
    layout = [[Guest("a", 40960, 2)], [Guest("b", 40960, 2)], []]
    with running_service(tmp_path / "vmpack.db", power=power, policy=Policy(ha=HaPolicy(1)),
                         failover_tick_s=3600) as service:  # fmt: skip
        reported(tmp_path, service, layout)
        service.power.tick()  # losing kvm-01 or kvm-02 needs kvm-03's room: it stays on
        assert not log.exists()
        service.runtime.set_host_state("kvm-03", HostState.STANDBY)  # switched off by hand
        service.power.tick()  # the reserve no longer holds: kvm-03 comes back
        assert log.read_text().split()[-2:] == ["on", "kvm-03"]
        assert service.store.host_states()["kvm-03"] is HostState.UP
