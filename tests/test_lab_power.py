"""Host power on the real lab: `vmpack lab power-off|power-on HOST` stand in for the BMC. An
empty host is switched off (its libvirtd stops; its silence is expected, so it is neither
taken for down nor fenced), and switched on again when a placement finds no room."""

from __future__ import annotations

import sys
from pathlib import Path

import libvirt
import pytest

from scheduler.service.liveness import Heartbeat
from scheduler.service.loops.power import PowerPolicy
from tests.lab_cluster import agents, lab, wait_for
from tests.service_harness import OPERATOR_TOKEN, WallClock, running_service
from vmpack_lab.hosts import save_lab

pytestmark = pytest.mark.lab


def answers(uri: str) -> bool:
    try:
        libvirt.open(uri).close()
        return True
    except libvirt.libvirtError:
        return False


def test_an_empty_host_is_switched_off_and_on_again_when_room_is_needed(tmp_path: Path) -> None:
    vmpack = str(Path(sys.executable).parent / "vmpack")
    lab_dir = tmp_path / "lab"
    power = PowerPolicy(
        (vmpack, "lab", "power-off", "{host}", "--dir", str(lab_dir)),
        (vmpack, "lab", "power-on", "{host}", "--dir", str(lab_dir)),
        timeout_s=60,
    )
    with lab(lab_dir, [["g1"], [], []]) as cluster:
        save_lab(cluster.hosts, lab_dir / "lab.json")
        with (
            running_service(
                tmp_path / "vmpack.db",
                WallClock(),
                heartbeat=Heartbeat(2.0, 4.0),
                power=power,
                failover_tick_s=0.5,
            ) as service,  # fmt: skip
            agents(service.url, cluster.hosts),
        ):
            ops = service.client(OPERATOR_TOKEN)
            wait_for(lambda: len(ops.get("/v1/hosts").json()) == 3, 30, "reports")
            service.power.tick()  # lab2 and lab3 are empty
            states = {h["name"]: h["state"] for h in ops.get("/v1/hosts").json()}
            assert states == {"lab1": "up", "lab2": "standby", "lab3": "standby"}
            lab2, lab3 = cluster.hosts[1], cluster.hosts[2]
            assert not answers(lab2.uri) and not answers(lab3.uri)  # really off

            def silent_past_down() -> bool:  # a silent host is taken for down after 4 s
                return all(h["report_age_s"] > 5.0 for h in ops.get("/v1/hosts").json()
                           if h["name"] in ("lab2", "lab3"))  # fmt: skip

            wait_for(silent_past_down, 30, "lab2 and lab3 to be silent past the down time")
            hosts = {h["name"]: h for h in ops.get("/v1/hosts").json()}
            assert {n: h["state"] for n, h in hosts.items()}["lab2"] == "standby"
            assert all(h["fencing"] is None for h in hosts.values())

            # More memory than lab1 has left, less than an empty host has: lab2 comes on.
            memory = hosts["lab1"]["capacity"]["memory_mib"] - 64
            ask = {"name": "big", "vcpus": 1, "memory": f"{memory}MiB"}
            refused = ops.post("/v1/placements", json=ask)
            assert refused.status_code == 409
            assert "powering lab2 on: retry once it reports" in refused.json()["error"]
            assert answers(lab2.uri)
            wait_for(lambda: ops.post("/v1/placements", json=ask).status_code == 200, 30,
                     "the placement to find lab2 up")  # fmt: skip
            assert [(c["vm"], c["host"]) for c in ops.get("/v1/placements").json()] == [
                ("big", "lab2")
            ]
            service.power.tick()  # lab2 is held for big; lab3 stays off
            assert answers(lab2.uri) and not answers(lab3.uri)
            metrics = ops.get("/metrics").text
            assert 'vmpack_power_actions_total{action="off",outcome="succeeded"} 2.0' in metrics
            assert 'vmpack_power_actions_total{action="on",outcome="succeeded"} 1.0' in metrics
