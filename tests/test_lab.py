"""End to end on a real lab: three libvirtd hosts, four QEMU guests, the scheduler and three
agents. The scheduler consolidates and carries the plan out with real live migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt
import pytest

from agents.libvirt_probe import probe
from scheduler.service.executor import ExecutionPolicy
from scheduler.service.records import OrderRecord
from tests.lab_cluster import agents, lab, wait_for, wait_for_reports
from tests.service_harness import (
    AGENT_TOKEN,
    OPERATOR_TOKEN,
    Service,
    WallClock,
    free_port,
    running_service,
)
from vmpack_lab.guest import boots, heartbeats
from vmpack_lab.hosts import stop

pytestmark = pytest.mark.lab


def start_one_migration(service: Service) -> tuple[int, OrderRecord]:
    """Two hosts with one VM each: consolidate, approve, apply, and wait for the migration."""
    ops = service.client(OPERATOR_TOKEN)
    wait_for_reports(ops, hosts=2, vms=2)
    plan_id = int(
        ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5}).json()["id"]
    )
    ops.post(f"/v1/plans/{plan_id}/approve")
    ops.post(f"/v1/plans/{plan_id}/apply")

    def running() -> bool:
        return [o.status for o in service.store.orders(plan_id=plan_id)] == ["running"]

    wait_for(running, 30, "the migration to start")
    return plan_id, service.store.orders(plan_id=plan_id)[0]


def finished_plan(service: Service, plan_id: int, timeout_s: float = 180) -> dict[str, Any]:
    """The plan once it no longer runs (done, failed or cancelled)."""
    ops = service.client(OPERATOR_TOKEN)
    wait_for(
        lambda: ops.get(f"/v1/plans/{plan_id}").json()["status"] != "running", timeout_s, "the plan"
    )
    plan: dict[str, Any] = ops.get(f"/v1/plans/{plan_id}").json()
    return plan


def test_consolidation_with_real_live_migrations(tmp_path: Path) -> None:
    layout = [["g1", "g2"], ["g3"], ["g4"]]
    with (
        lab(tmp_path / "lab", layout) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock()) as service,
        agents(service.url, cluster.hosts),
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for_reports(ops, hosts=3, vms=4)
        identities = {h["name"]: h["host_uuid"] for h in ops.get("/v1/hosts").json()}
        assert identities == {h.name: h.host_uuid for h in cluster.hosts}  # libvirtd's own
        # lab2's libvirtd read by an agent given lab1's name: refused, nothing merged.
        impostor = probe(libvirt.open(cluster.hosts[1].uri), "lab1").to_json()
        refused = service.client(AGENT_TOKEN).post("/v1/reports", json=impostor)
        assert refused.status_code == 409 and cluster.hosts[1].host_uuid in refused.text
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5}).json()
        summary = created["summary"]
        assert (summary["active_hosts_before"], summary["active_hosts_after"]) == (3, 1)
        assert summary["moves"] == 2  # the VMs of the two hosts holding one VM each
        before = {vm: heartbeats(console)[-1] for vm, console in cluster.consoles.items()}
        plan_id = created["id"]
        assert ops.post(f"/v1/plans/{plan_id}/approve").status_code == 200
        assert ops.post(f"/v1/plans/{plan_id}/apply").json()["status"] == "running"
        plan = finished_plan(service, plan_id)
        assert plan["status"] == "done", plan["events"]
        wait_for(
            lambda: all(heartbeats(c)[-1] > before[vm] + 1 for vm, c in cluster.consoles.items()),
            30, "two more heartbeats from every guest after the last move",
        )  # fmt: skip
        where = cluster.where()
        assert sorted(where) == ["g1", "g2", "g3", "g4"]
        assert all(len(hosts) == 1 for hosts in where.values()), where  # never twice, never lost
        assert {hosts[0] for hosts in where.values()} == {"lab1"}  # the emptied hosts have none
        for vm, console in cluster.consoles.items():
            assert heartbeats(console)[-1] > before[vm], f"{vm} stopped beating"
            assert boots(console) == 1, f"{vm} rebooted"
        orders = service.store.orders(plan_id=plan_id)
        assert sorted((o.vm, o.source, o.target, o.status) for o in orders) == [
            ("g3", "lab2", "lab1", "succeeded"), ("g4", "lab3", "lab1", "succeeded"),
        ]  # fmt: skip
        assert all(o.downtime_ms is not None for o in orders)
        metrics = ops.get("/metrics").text
        assert 'vmpack_migrations_total{outcome="succeeded"} 2.0' in metrics
        assert "vmpack_migration_downtime_seconds_count 2.0" in metrics


def test_destination_dies_mid_migration_vm_stays_on_source(tmp_path: Path) -> None:
    # Two hosts, one guest each: consolidation moves one guest; its destination dies meanwhile.
    layout = [["f1"], ["f2"]]
    slow = ExecutionPolicy(bandwidth_mib_s=1, tick_s=0.2)  # 128 MiB at 1 MiB/s: a long copy
    with (
        lab(tmp_path / "lab", layout) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock(), execution=slow) as service,
        agents(service.url, cluster.hosts),
    ):
        ops = service.client(OPERATOR_TOKEN)
        plan_id, order = start_one_migration(service)

        def copy_under_way() -> bool:
            now = service.store.order(order.id)
            return now is not None and (now.progress_pct or 0) > 0

        wait_for(copy_under_way, 60, "the memory copy to be under way")
        copying = service.store.order(order.id)
        assert copying is not None and copying.progress_pct is not None  # from the libvirt job
        assert 0 < copying.progress_pct < 100
        destination = next(h for h in cluster.hosts if h.name == order.target)
        stop(destination)  # the destination host dies: its libvirtd and its QEMU processes
        assert finished_plan(service, plan_id)["status"] == "failed"
        failed = service.store.orders(plan_id=plan_id)[0]
        assert failed.status == "failed" and failed.error.startswith("libvirt: ")
        console = cluster.consoles[order.vm]
        beats = heartbeats(console)[-1]
        wait_for(lambda: heartbeats(console)[-1] > beats, 30, f"{order.vm} to beat on")
        assert boots(console) == 1  # still running, never restarted
        source = next(h for h in cluster.hosts if h.name == order.source)
        conn = libvirt.open(source.uri)
        assert conn.lookupByName(order.vm).isActive()  # on its source, as the agent reported
        conn.close()
        events = " ".join(e["event"] for e in ops.get(f"/v1/plans/{plan_id}").json()["events"])
        assert "failed" in events and order.vm in events
        assert 'vmpack_migrations_total{outcome="failed"} 1.0' in ops.get("/metrics").text


def test_scheduler_restart_mid_plan_resumes(tmp_path: Path) -> None:
    layout = [["r1"], ["r2"]]
    slow = ExecutionPolicy(bandwidth_mib_s=4, tick_s=0.2)  # the copy outlasts the restart
    db, port = tmp_path / "vmpack.db", free_port()
    with (
        lab(tmp_path / "lab", layout) as cluster,
        agents(f"http://127.0.0.1:{port}", cluster.hosts) as team,
    ):
        with running_service(db, WallClock(), port, slow) as service:
            plan_id, order = start_one_migration(service)
        # The scheduler is down; the migration goes on, the agents keep trying.
        failed = [agent.status.reports_failed for agent in team]
        wait_for(
            lambda: all(a.status.reports_failed > n for a, n in zip(team, failed, strict=True)),
            30, "every agent to fail a report while the scheduler is down",
        )  # fmt: skip
        with running_service(db, WallClock(), port, slow) as service:
            plan = finished_plan(service, plan_id)
            assert plan["status"] == "done", plan["events"]
            assert "resumed after a scheduler restart" in [e["event"] for e in plan["events"]]
            assert service.store.orders(plan_id=plan_id)[0].status == "succeeded"
        where = cluster.where()
        assert where[order.vm] == [order.target] and all(len(h) == 1 for h in where.values())
        assert boots(cluster.consoles[order.vm]) == 1


def test_maintenance_empties_the_host_and_moves_the_vms_back_with_live_migrations(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN + "\n")
    with (
        lab(tmp_path / "lab", [["m1", "m2"], []]) as cluster,
        running_service(tmp_path / "vmpack.db", WallClock()) as service,
        agents(service.url, cluster.hosts),
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for_reports(ops, hosts=2, vms=2)

        def vmpack(*args: str) -> subprocess.CompletedProcess[str]:
            command = [sys.executable, "-m", "scheduler.cli.main", *args, "--scheduler", service.url,
                       "--token-file", str(token)]  # fmt: skip
            return subprocess.run(command, capture_output=True, text=True, timeout=300)

        entered = vmpack("maintenance", "enter", "lab1", "--time-limit", "5")
        assert entered.returncode == 0, entered.stdout + entered.stderr
        assert "lab1: maintenance; plan 1 moves 2 VMs off" in entered.stdout
        assert entered.stdout.rstrip().endswith("plan 1: done (done: all moves done)")
        assert {vm: hosts for vm, hosts in cluster.where().items()} == {
            "m1": ["lab2"],
            "m2": ["lab2"],
        }
        assert all(boots(console) == 1 for console in cluster.consoles.values())
        states = {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}
        assert states == {"lab1": "maintenance", "lab2": "up"}
        wait_for(lambda: all(h["vms"] == (2 if h["name"] == "lab2" else 0)
                             for h in ops.get("/v1/hosts").json()), 30, "reports after")  # fmt: skip
        back = vmpack("maintenance", "exit", "lab1", "--move-back")
        assert back.returncode == 0, back.stdout + back.stderr
        assert "lab1: up; it takes VMs again" in back.stdout
        assert "lab1: plan 2 moves 2 VMs back" in back.stdout
        assert back.stdout.rstrip().endswith("plan 2: done (done: all moves done)")
        assert {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}["lab1"] == "up"
        assert cluster.where() == {"m1": ["lab1"], "m2": ["lab1"]}
        assert all(boots(console) == 1 for console in cluster.consoles.values())  # live, no reboot
