"""Reports cannot lie about other hosts: a VM seen running on two hosts, or one domain UUID
running under two names, is a conflict that the service reports (``GET /v1/vms``,
``vmpack vms``, a metric) and keeps out of plans; a report never releases the room another
host holds for a placed VM."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.service_harness import AGENT_TOKEN, BOUND_TOKEN, OPERATOR_TOKEN, running_service


def domain(name: str, uuid: str, memory_mib: int = 4096) -> dict[str, Any]:
    return {"name": name, "uuid": uuid, "vcpus": 2, "memory_mib": memory_mib, "disk_mib": 0,
            "state": "running", "persistent": True}  # fmt: skip


def report(
    host: str, *domains: dict[str, Any], memory_mib: int = 65536, host_uuid: str = ""
) -> dict[str, Any]:
    return {"host": host, "cpus": 32, "memory_mib": memory_mib, "disk_mib": 0,
            "domains": list(domains), "host_uuid": host_uuid}  # fmt: skip


def test_a_vm_running_on_two_hosts_is_reported_and_never_moved(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        agent, ops = service.client(AGENT_TOKEN), service.client(OPERATOR_TOKEN)
        for body in (
            report("kvm-01", domain("web1", "u-1")),
            report("kvm-02", domain("web1", "u-1b"), domain("db1", "u-2")),
            report("kvm-03", domain("cache1", "u-3")),
        ):
            assert agent.post("/v1/reports", json=body).status_code == 200
        vms = {v["name"]: v for v in ops.get("/v1/vms").json()}
        assert vms["web1"]["conflict"] == "web1 is running on kvm-01, kvm-02"
        assert vms["db1"]["conflict"] is None
        assert "vmpack_vm_conflicts 1.0" in ops.get("/metrics").text
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 5}).json()
        moved = {
            m["vm"] for m in ops.get(f"/v1/plans/{created['id']}").json()["plan"]["migrations"]
        }
        assert moved and "web1" not in moved  # the others consolidate; web1 is held
        shown = run_cli(service.url, tmp_path, "vms")
        assert shown.returncode == 1 and "web1 is running on kvm-01, kvm-02" in shown.stdout


def test_a_bound_token_cannot_take_another_hosts_vm_or_its_room(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        agent, ops = service.client(AGENT_TOKEN), service.client(OPERATOR_TOKEN)
        bound = service.client(BOUND_TOKEN)  # may speak for kvm-01 only
        assert (
            agent.post("/v1/reports", json=report("kvm-02", domain("db1", "u-2"))).status_code
            == 200
        )
        small = 512  # kvm-01 has no room for new1: its room is held on kvm-02
        assert bound.post("/v1/reports", json=report("kvm-01", memory_mib=small)).status_code == 200
        placed = ops.post("/v1/placements", json={"name": "new1", "vcpus": 1, "memory": "1GiB"})
        assert placed.status_code == 200 and placed.json()["host"] == "kvm-02"
        # kvm-01's token reports kvm-02's VM (its UUID) under another name, and the new VM.
        lie = report("kvm-01", domain("mine", "u-2"), domain("new1", "u-9", 1024), memory_mib=small)
        assert bound.post("/v1/reports", json=lie).status_code == 200
        vms = {v["name"]: v for v in ops.get("/v1/vms").json()}
        why = "domain u-2 is running as mine on kvm-01, db1 on kvm-02"
        assert vms["db1"]["conflict"] == why and vms["mine"]["conflict"] == why
        claims = [(c["vm"], c["host"]) for c in ops.get("/v1/placements").json()]
        assert claims == [("new1", "kvm-02")]  # only its own host's report ends a claim


def test_a_second_machine_under_a_known_host_name_is_refused(tmp_path: Path) -> None:
    """Two agents given one ``--host`` (or a replaced machine): the newcomer's reports are
    refused with 409 and counted, never merged, until an operator forgets the identity."""
    db = tmp_path / "vmpack.db"
    first = report("kvm-01", domain("web1", "u-1"), host_uuid="aaaa-1")
    impostor = report("kvm-01", domain("other", "u-7"), host_uuid="bbbb-2")
    with running_service(db) as service:
        agent, ops = service.client(AGENT_TOKEN), service.client(OPERATOR_TOKEN)
        assert agent.post("/v1/reports", json=first).status_code == 200
        refused = agent.post("/v1/reports", json=impostor)
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(
            "host: kvm-01 is reported by libvirt host aaaa-1; this report comes from bbbb-2"
        )
        assert [v["name"] for v in ops.get("/v1/vms").json()] == ["web1"]  # nothing merged
        assert 'vmpack_reports_received_total{outcome="identity_conflict"} 1.0' in (
            ops.get("/metrics").text
        )
        assert agent.post("/v1/reports", json=first).status_code == 200  # the owner goes on
    with running_service(db) as service:  # the identity outlives a restart
        agent, ops = service.client(AGENT_TOKEN), service.client(OPERATOR_TOKEN)
        assert agent.post("/v1/reports", json=impostor).status_code == 409
        assert ops.get("/v1/hosts").json()[0]["host_uuid"] == "aaaa-1"
        forgot = run_cli(service.url, tmp_path, "hosts", "forget-identity", "kvm-01")
        assert forgot.returncode == 0, forgot.stderr
        assert agent.post("/v1/reports", json=impostor).status_code == 200
        assert [v["name"] for v in ops.get("/v1/vms").json()] == ["other"]
        assert agent.post("/v1/reports", json=first).status_code == 409  # now the other way
        unknown = run_cli(service.url, tmp_path, "hosts", "forget-identity", "kvm-99")
        assert unknown.returncode == 2 and "404: host: unknown host 'kvm-99'" in unknown.stderr


def run_cli(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    token = tmp_path / "operator.token"
    token.write_text(OPERATOR_TOKEN)
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", *args, "--scheduler", url,
         "--token-file", str(token)],
        capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin"},
    )  # fmt: skip
