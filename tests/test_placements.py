"""The placement API holds the room it hands out until the VM's host reports it: over real
HTTP, real SQLite and agents reading libvirt's test driver."""

from __future__ import annotations

from pathlib import Path

from agents.agent import Agent
from scheduler.service.records import Claim
from tests.service_harness import OPERATOR_TOKEN, running_service
from tests.test_service import logged_power, reported


def start_guest(agent: Agent, name: str, memory_mib: int) -> None:
    """Create and start a domain on the agent's host, as the cloud layer would."""
    conn = agent.connect(agent.config.libvirt_uri)
    conn.createXML(
        f"<domain type='test'><name>{name}</name><memory unit='MiB'>{memory_mib}</memory>"
        "<vcpu>2</vcpu><os><type>hvm</type></os></domain>"
    )


def test_a_placement_holds_its_room_until_the_vm_is_reported(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        team = reported(tmp_path, service)  # free: 52, 60 and 62 GiB
        ops = service.client(OPERATOR_TOKEN)

        def place(name: str) -> str | None:
            answer = ops.post("/v1/placements", json={"name": name, "vcpus": 2, "memory": "50GiB"})
            assert answer.status_code in (200, 409), answer.text
            return answer.json().get("host")

        hosts = [place("a"), place("b"), place("c")]
        assert sorted(h for h in hosts if h) == ["kvm-01", "kvm-02", "kvm-03"]
        assert place("d") is None  # every host holds 50 GiB for a VM not yet running
        held = ops.get("/v1/placements").json()
        assert [(c["vm"], c["host"]) for c in held] == list(zip("abc", hosts, strict=True))
        assert (
            ops.post("/v1/placements", json={"name": "a", "vcpus": 1, "memory": "1GiB"}).status_code
            == 409
        )

        assert ops.delete("/v1/placements/c").status_code == 200  # c will not be created
        assert ops.delete("/v1/placements/c").status_code == 404
        assert place("d") == hosts[2]

        host_a = hosts[0]
        assert host_a is not None
        start_guest(team[int(host_a[-1]) - 1], "a", 50 * 1024)
        team[int(host_a[-1]) - 1].beat()
        assert [c["vm"] for c in ops.get("/v1/placements").json()] == ["b", "d"]
        vms = {v["name"]: v["host"] for v in ops.get("/v1/vms").json()}
        assert vms["a"] == host_a

        service.clock.now += 901  # b and d were never created: their claims lapse
        for agent in team:
            agent.beat()
        assert ops.get("/v1/placements").json() == []
        assert place("e") is not None


def test_host_power_keeps_a_host_a_placement_chose(tmp_path: Path) -> None:
    power, log = logged_power(tmp_path)
    with running_service(tmp_path / "vmpack.db", power=power, failover_tick_s=3600) as service:
        team = reported(tmp_path, service, [[], [], []])
        ops = service.client(OPERATOR_TOKEN)
        placed = ops.post("/v1/placements", json={"name": "big", "vcpus": 2, "memory": "40GiB"})
        assert placed.status_code == 200, placed.text
        host = placed.json()["host"]
        service.power.tick()  # the two other empty hosts go off; the chosen one stays on
        assert sorted(log.read_text().split("\n")[:-1]) == sorted(
            f"off {h}" for h in ("kvm-01", "kvm-02", "kvm-03") if h != host
        )
        chosen = team[int(host[-1]) - 1]
        start_guest(chosen, "big", 40 * 1024)
        chosen.beat()
        assert ops.get("/v1/placements").json() == []
        service.power.tick()  # no longer held by a claim, but running now
        assert f"off {host}" not in log.read_text()


def test_no_plan_moves_a_vm_that_is_only_claimed(tmp_path: Path) -> None:
    with running_service(tmp_path / "vmpack.db") as service:
        reported(tmp_path, service)  # everything fits on kvm-01; kvm-02 holds 4 GiB
        now = service.clock()
        claim = Claim("new", "kvm-02", {"vcpus": 1, "memory_mib": 2048}, now, now + 900)
        service.store.add_claim(claim)  # as the placement path keeps it: the store, then memory
        service.runtime.live.add_claim(claim)
        ops = service.client(OPERATOR_TOKEN)
        created = ops.post("/v1/plans", json={"goal": "consolidate", "time_limit_s": 3})
        assert created.status_code == 201, created.text
        plan = ops.get(f"/v1/plans/{created.json()['id']}").json()["plan"]
        assert plan["placement"]["new"] == "kvm-02"
        assert "new" not in {m["vm"] for m in plan["migrations"]}
