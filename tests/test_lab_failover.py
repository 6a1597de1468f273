"""Host failure on the real lab: a host's libvirtd and QEMU processes die; the scheduler marks
it down, fences it with a real command (which first fails, as when a BMC is unreachable), and
only once fencing succeeds restarts its guest on a survivor, where it boots and beats. When the
host comes back, its stale copy of the guest is removed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import libvirt
import pytest

from scheduler.service.liveness import Heartbeat
from scheduler.service.loops.failover import FencingPolicy
from tests.lab_cluster import Lab, agents, lab, wait_for, wait_for_reports
from tests.service_harness import OPERATOR_TOKEN, Service, WallClock, running_service
from vmpack_lab.guest import boots, heartbeats
from vmpack_lab.hosts import power_loss, start

pytestmark = pytest.mark.lab


@contextmanager
def fencing_lab(
    tmp_path: Path, layout: list[list[str]], fence: Path, racks: list[str] | None = None
) -> Iterator[tuple[Lab, Service]]:
    """The lab, the scheduler with ``fence`` as its fencing command and a short heartbeat,
    and the agents, once every guest has been reported."""
    fencing = FencingPolicy((str(fence), "{host}"), timeout_s=10, retry_s=2)
    with (
        lab(tmp_path / "lab", layout) as cluster,
        running_service(
            tmp_path / "vmpack.db", WallClock(), heartbeat=Heartbeat(2.0, 4.0), fencing=fencing
        ) as service,
        agents(service.url, cluster.hosts, racks=racks),
    ):
        ops = service.client(OPERATOR_TOKEN)
        guests = sum(len(g) for g in layout)
        wait_for_reports(ops, hosts=len(layout), vms=guests)
        yield cluster, service


def test_a_dead_host_is_fenced_then_its_guest_restarts_on_a_survivor(tmp_path: Path) -> None:
    layout = [["s1"], ["s2"], ["d1"]]
    bmc_ok, fenced = tmp_path / "bmc-ok", tmp_path / "fenced.log"
    script = tmp_path / "fence.sh"  # fails until the "BMC" answers, then records the host
    script.write_text(
        f"#!/bin/sh\n[ -e {bmc_ok} ] || {{ echo 'BMC of '$1' unreachable' >&2; exit 1; }}\n"
        f"echo $1 >> {fenced}\n"
    )
    script.chmod(0o755)
    with fencing_lab(tmp_path, layout, script) as (cluster, service):
        ops = service.client(OPERATOR_TOKEN)
        dead = cluster.hosts[2]
        died_at = time.time()
        power_loss(dead)  # libvirtd and the guests die at once: no last word from its agent

        def fencing_of_lab3() -> dict[str, str] | None:
            found = {h["name"]: h["fencing"] for h in ops.get("/v1/hosts").json()}
            return found["lab3"]

        wait_for(lambda: fencing_of_lab3() is not None, 30, "lab3 to be down and fenced")
        record = fencing_of_lab3()
        assert record is not None and record["status"] == "failed"
        assert record["detail"] == "fencing command exited 1: BMC of lab3 unreachable"
        first_try = record["at"]

        def retried() -> bool:
            again = fencing_of_lab3()
            return again is not None and again["at"] > first_try and again["status"] == "failed"

        wait_for(retried, 30, "a second fencing try of lab3")  # it fails too
        assert "d1" not in cluster.where()  # and d1 stays down meanwhile
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


def test_a_whole_rack_fails_and_its_guests_restart_in_the_other_rack(tmp_path: Path) -> None:
    layout = [["s1"], ["s2"], ["d1"], ["d2"]]  # lab1, lab2 in rack r1; lab3, lab4 in r2
    fenced = tmp_path / "fenced.log"
    script = tmp_path / "fence.sh"
    script.write_text(f"#!/bin/sh\necho $1 >> {fenced}\n")
    script.chmod(0o755)
    with fencing_lab(tmp_path, layout, script, ["r1", "r1", "r2", "r2"]) as (cluster, service):
        ops = service.client(OPERATOR_TOKEN)
        racks = {h["name"]: h["labels"]["rack"] for h in ops.get("/v1/hosts").json()}
        assert racks == {"lab1": "r1", "lab2": "r1", "lab3": "r2", "lab4": "r2"}
        died_at = time.time()
        for dead in cluster.hosts[2:]:  # the rack loses power: both hosts at once
            power_loss(dead)

        def restarted() -> bool:
            where = cluster.where()
            return all(where.get(vm, [""])[0] in ("lab1", "lab2") for vm in ("d1", "d2"))

        try:
            wait_for(restarted, 90, "d1 and d2 to restart in rack r1")
        except AssertionError:  # what the scheduler saw, for the CI log
            print("hosts:", ops.get("/v1/hosts").json(), "\nwhere:", cluster.where())
            for p in service.store.plans():
                print("plan", p.id, p.goal, p.status, service.store.plan_events(p.id))
            raise
        where = cluster.where()
        assert all(len(where[vm]) == 1 for vm in ("s1", "s2", "d1", "d2"))
        for vm in ("d1", "d2"):
            console = cluster.consoles[vm]
            wait_for(lambda c=console: boots(c) == 2, 60, f"{vm} to boot again")  # type: ignore[misc]
            beats = heartbeats(console)[-1]
            wait_for(lambda c=console, b=beats: heartbeats(c)[-1] > b, 30, f"{vm} to beat")  # type: ignore[misc]
        print(f"\nrack failover: {time.time() - died_at:.1f} s from the rack's death to both "
              "guests beating")  # fmt: skip
        assert sorted(fenced.read_text().split()) == ["lab3", "lab4"]
        assert 'vmpack_restarts_total{outcome="succeeded"} 2.0' in ops.get("/metrics").text
        for survivor in ("s1", "s2"):
            assert boots(cluster.consoles[survivor]) == 1  # untouched


def defined_on(uri: str) -> set[str]:
    conn = libvirt.open(uri)
    try:
        return {dom.name() for dom in conn.listAllDomains()}
    finally:
        conn.close()
