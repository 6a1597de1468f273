"""Host failure on the real lab: a host's libvirtd and QEMU processes die; the scheduler marks
it down, fences it with a real command (which first fails, as when a BMC is unreachable), and
only once fencing succeeds restarts its guest on a survivor, where it boots and beats. When the
host comes back, its stale copy of the guest is removed."""

from __future__ import annotations

import time
from pathlib import Path

import libvirt
import pytest

from scheduler.service.failover_watch import FencingPolicy
from scheduler.service.liveness import Heartbeat
from tests.lab_cluster import agents, lab, wait_for
from tests.service_harness import OPERATOR_TOKEN, running_service
from tests.test_lab import WallClock
from vmpack_lab.guest import boots, heartbeats
from vmpack_lab.hosts import kill_guests, start, stop

pytestmark = pytest.mark.lab


def test_a_dead_host_is_fenced_then_its_guest_restarts_on_a_survivor(tmp_path: Path) -> None:
    layout = [["s1"], ["s2"], ["d1"]]
    bmc_ok, fenced = tmp_path / "bmc-ok", tmp_path / "fenced.log"
    script = tmp_path / "fence.sh"  # fails until the "BMC" answers, then records the host
    script.write_text(
        f"#!/bin/sh\n[ -e {bmc_ok} ] || {{ echo 'BMC of '$1' unreachable' >&2; exit 1; }}\n"
        f"echo $1 >> {fenced}\n"
    )
    script.chmod(0o755)
    fencing = FencingPolicy((str(script), "{host}"), timeout_s=10, retry_s=2)
    with (
        lab(tmp_path / "lab", layout) as cluster,
        running_service(
            tmp_path / "vmpack.db", WallClock(), heartbeat=Heartbeat(2.0, 4.0), fencing=fencing
        ) as service,
        agents(service.url, cluster.hosts),
    ):
        ops = service.client(OPERATOR_TOKEN)
        wait_for(lambda: sum(h["vms"] for h in ops.get("/v1/hosts").json()) == 3, 30, "reports")
        dead = cluster.hosts[2]
        died_at = time.time()
        kill_guests(dead)  # the host dies: its guests, then its libvirtd (which takes seconds)
        stop(dead)

        def fencing_of_lab3() -> dict[str, str] | None:
            found = {h["name"]: h["fencing"] for h in ops.get("/v1/hosts").json()}
            return found["lab3"]

        wait_for(lambda: fencing_of_lab3() is not None, 30, "lab3 to be down and fenced")
        record = fencing_of_lab3()
        assert record is not None and record["status"] == "failed"
        assert record["detail"] == "fencing command exited 1: BMC of lab3 unreachable"
        time.sleep(3)  # a retry fails too; d1 must stay down meanwhile
        assert "d1" not in cluster.where()
        metrics = ops.get("/metrics").text
        assert "vmpack_hosts_fencing_failed 1.0" in metrics
        assert "vmpack_vms_on_down_hosts 1.0" in metrics

        bmc_ok.touch()  # the BMC answers: the next retry fences lab3
        answered_at = time.time()
        wait_for(lambda: "d1" in cluster.where(), 60, "d1 to restart")
        restarted_on = cluster.where()["d1"]
        assert len(restarted_on) == 1 and restarted_on[0] in ("lab1", "lab2")
        console = cluster.consoles["d1"]
        wait_for(lambda: boots(console) == 2, 60, "d1 to boot again")
        beats = heartbeats(console)[-1]
        wait_for(lambda: heartbeats(console)[-1] > beats, 30, "d1 to beat")
        last_report = {r.host: at for r, at in service.store.reports()}["lab3"]
        print(f"\nfailover: {time.time() - died_at:.1f} s from host death to a beating guest, "
              f"{time.time() - last_report:.1f} s from its last report, "
              f"{time.time() - answered_at:.1f} s from the fencing that worked")  # fmt: skip
        assert fenced.read_text() == "lab3\n"
        plan = [p for p in service.store.plans() if p.goal == "failover"][-1]
        wait_for(lambda: service.store.plan(plan.id).status == "done", 30, "the plan")  # type: ignore[union-attr]
        metrics = ops.get("/metrics").text
        assert 'vmpack_restarts_total{outcome="succeeded"} 1.0' in metrics
        assert 'vmpack_fencing_total{outcome="succeeded"} 1.0' in metrics
        for survivor in ("s1", "s2"):
            assert boots(cluster.consoles[survivor]) == 1  # untouched

        # lab3 comes back: its libvirtd starts again with d1 still defined there. The copy is
        # history (d1 runs on a survivor), so the scheduler has lab3's agent remove it.
        start(dead)
        wait_for(lambda: "d1" not in defined_on(dead.uri), 60, "lab3 to discard its stale d1")
        assert cluster.where()["d1"] == restarted_on  # still running once, where it restarted
        beats = heartbeats(console)[-1]
        wait_for(lambda: heartbeats(console)[-1] > beats, 30, "d1 to keep beating")
        assert boots(console) == 2


def defined_on(uri: str) -> set[str]:
    conn = libvirt.open(uri)
    try:
        return {dom.name() for dom in conn.listAllDomains()}
    finally:
        conn.close()
