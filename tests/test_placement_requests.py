"""Placement requests speak the policy's language: VM labels from libvirt metadata drive
rule selectors live; a request carries labels, priority, host labels and rules; a batch is
placed all or none with the rules among its VMs honoured, and a batch that cannot be placed
whole holds no room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import libvirt

from agents.agent import Agent, AgentConfig
from agents.libvirt_probe import METADATA_NS, probe
from scheduler.model import HaPolicy, Policy
from scheduler.scenario.policy import parse_policy
from tests.libvirt_hosts import Guest, connect, write_host
from tests.service_harness import AGENT_TOKEN, OPERATOR_TOKEN, Service, running_service

DB_APART = "rules:\n  - {type: anti-affinity, selector: {app: db}}\n"


def label(conn: libvirt.virConnect, vm: str, xml: str) -> None:
    """What ``virsh metadata VM --uri https://vmpack.dev/xmlns/1 --key vmpack --set XML``
    does, through the same libvirt call."""
    flags = libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG
    conn.lookupByName(vm).setMetadata(
        libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, "vmpack", METADATA_NS, flags
    )


def three_hosts(tmp_path: Path, service: Service, zones: tuple[str, ...]) -> list[Agent]:
    """kvm-01 runs db1 (labelled app=db in its metadata), kvm-02 web1, kvm-03 nothing."""
    layout = [[Guest("db1", 8192, 2)], [Guest("web1", 4096, 2)], []]
    team = []
    for i, guests in enumerate(layout, start=1):
        conn = connect(write_host(tmp_path, i, 16, 64, guests))
        if i == 1:
            label(conn, "db1", '<vmpack><priority>5</priority><label key="app">db</label></vmpack>')
        labels = {"zone": zones[i - 1]}
        config = AgentConfig(f"kvm-0{i}", "test:///", service.url, AGENT_TOKEN, labels=labels)
        team.append(Agent(config, connect=lambda _uri, c=conn: c))
    for agent in team:
        assert agent.beat()
    return team


def place(service: Service, body: dict[str, Any]) -> Any:
    return service.client(OPERATOR_TOKEN).post("/v1/placements", json=body)


def vm(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "vcpus": 1, "memory": "2GiB", **extra}


def test_the_agent_reads_labels_and_priority_from_the_domain_metadata(tmp_path: Path) -> None:
    conn = connect(write_host(tmp_path, 1, 8, 16, [Guest("db1", 1024)]))
    label(conn, "db1", '<vmpack><priority>7</priority><label key="app">db</label>'
                       '<label key="bad key">dropped</label></vmpack>')  # fmt: skip
    (domain,) = probe(conn, "kvm-01").domains
    assert (domain.labels, domain.priority) == ({"app": "db"}, 7)


def test_a_metadata_label_drives_a_selector_rule_and_requests_carry_labels(
    tmp_path: Path,
) -> None:
    with running_service(tmp_path / "vmpack.db", policy_file=parse_policy(DB_APART)) as service:
        three_hosts(tmp_path, service, ("a", "a", "b"))
        ops = service.client(OPERATOR_TOKEN)
        vms = {v["name"]: v for v in ops.get("/v1/vms").json()}
        assert vms["db1"]["labels"] == {"app": "db"}
        # Best fit takes kvm-01 (the busiest) for a VM the rule does not bind...
        plain = place(service, vm("cache1"))
        assert plain.json()["host"] == "kvm-01"
        # ...and keeps a second db off it.
        second = place(service, vm("db2", labels={"app": "db"}))
        assert second.status_code == 200 and second.json()["host"] == "kvm-02"
        third = place(service, vm("db3", labels={"app": "db"}, host_labels={"zone": "a"}))
        assert third.status_code == 409
        assert "lacks the labels zone=a" in third.json()["error"]  # kvm-03 is in zone b
        assert "excluded by anti-affinity" in third.json()["error"]
        fourth = place(service, vm("db3", labels={"app": "db"}, priority=10))
        assert fourth.json()["host"] == "kvm-03"
        held = {c["vm"]: c for c in ops.get("/v1/placements").json()}
        assert held["db3"]["labels"] == {"app": "db"}


def test_a_batch_is_placed_whole_with_its_rules_kept_or_not_at_all(tmp_path: Path) -> None:
    replicas = {"type": "anti-affinity", "vms": ["pg-1", "pg-2", "pg-3"]}
    with running_service(tmp_path / "vmpack.db") as service:
        three_hosts(tmp_path, service, ("a", "a", "b"))
        ops = service.client(OPERATOR_TOKEN)
        answer = place(service, {"vms": [vm("pg-1"), vm("pg-2"), vm("pg-3")], "rules": [replicas]})
        assert answer.status_code == 200, answer.text
        hosts = {p["vm"]: p["host"] for p in answer.json()["vms"]}
        assert sorted(hosts.values()) == ["kvm-01", "kvm-02", "kvm-03"]  # apart
        (kept,) = ops.get("/v1/rules").json()  # the rule stays for every later plan
        assert kept["rule"]["vms"] == ["pg-1", "pg-2", "pg-3"] and kept["violations"] == []
        assert kept["id"] == answer.json()["rules"][0]
        # Four replicas apart on three hosts: refused whole, no room held, no rule added.
        four = {"type": "anti-affinity", "vms": ["r-1", "r-2", "r-3", "r-4"]}
        batch = [vm(f"r-{k}") for k in range(1, 5)]
        refused = place(service, {"vms": batch, "rules": [four]})
        assert refused.status_code == 409
        assert sorted(c["vm"] for c in ops.get("/v1/placements").json()) == [
            "pg-1", "pg-2", "pg-3"
        ]  # fmt: skip
        assert len(ops.get("/v1/rules").json()) == 1
        # Bad batches are refused before anything: a name twice, a VM that exists already.
        twice = place(service, {"vms": [vm("x"), vm("x")]})
        assert twice.status_code == 422 and twice.json()["error"].startswith("vms: ")
        exists = place(service, {"vms": [vm("y"), vm("pg-1")]})
        assert exists.status_code == 409 and "pg-1" in exists.json()["error"]
        assert "y" not in {c["vm"] for c in ops.get("/v1/placements").json()}
        contradiction = {"type": "affinity", "vms": ["pg-1", "pg-2"]}
        clash = place(service, vm("z", rules=[contradiction]))
        assert clash.status_code == 409 and "contradicts" in clash.json()["error"]


def test_a_batch_under_an_ha_policy_takes_the_exact_path(tmp_path: Path) -> None:
    ha = Policy(ha=HaPolicy(host_failures_to_tolerate=1))
    replicas = {"type": "anti-affinity", "vms": ["pg-1", "pg-2"]}
    with running_service(tmp_path / "vmpack.db", policy=ha) as service:
        three_hosts(tmp_path, service, ("a", "a", "b"))
        answer = place(service, {"vms": [vm("pg-1"), vm("pg-2")], "rules": [replicas]})
        assert answer.status_code == 200, answer.text
        hosts = [p["host"] for p in answer.json()["vms"]]
        assert len(set(hosts)) == 2
