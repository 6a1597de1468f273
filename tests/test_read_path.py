"""Host agents' read path on real libvirt (the test driver, one node file per host): probe,
usage, inventory into a snapshot, and the engine planning on that snapshot."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agents.libvirt_probe import probe
from agents.report import HostReport
from agents.usage import cpu_usage
from scheduler.engine import decide_plan
from scheduler.model import MEMORY, VCPUS, Goal, HostState
from scheduler.planning.check import check_plan
from scheduler.service.inventory import snapshot
from scheduler.solver.options import SearchOptions
from tests.libvirt_hosts import Guest, connect, write_host


def three_hosts(tmp_path: Path) -> list[HostReport]:
    uris = [
        write_host(
            tmp_path,
            1,
            16,
            64,
            [Guest("web1", 4096, 2), Guest("db1", 16384, 8), Guest("old", 2048, 1, "shutoff")],
        ),
        write_host(tmp_path, 2, 16, 64, [Guest("web2", 4096, 2)]),
        write_host(tmp_path, 3, 16, 64, [Guest("cache1", 8192, 2)]),
    ]
    return [probe(connect(uri), f"kvm-0{i}", {"rack": "r1"}) for i, uri in enumerate(uris, start=1)]


def test_probe_reads_host_and_domains(tmp_path: Path) -> None:
    report = three_hosts(tmp_path)[0]
    assert (report.host, report.cpus, report.memory_mib) == ("kvm-01", 16, 64 * 1024)
    by_name = {d.name: d for d in report.domains}
    assert (by_name["db1"].vcpus, by_name["db1"].memory_mib, by_name["db1"].state) == (
        8,
        16384,
        "running",
    )
    assert by_name["old"].state == "shutoff" and not by_name["old"].holds_resources
    assert HostReport.from_json(report.to_json()) == report  # what travels to the scheduler


def test_usage_from_cpu_time_deltas(tmp_path: Path) -> None:
    before = three_hosts(tmp_path)[0]
    web1 = next(d for d in before.domains if d.name == "web1")
    # 2 vCPUs for 10 s offer 20 s of CPU; 5 s were used: 25 %.
    after = replace(before, domains=(replace(web1, cpu_time_ns=web1.cpu_time_ns + 5 * 10**9),))
    assert cpu_usage(before, after, seconds=10.0) == {"web1": 0.25}


def test_snapshot_places_running_domains_and_engine_plans_on_it(
    tmp_path: Path, options: SearchOptions
) -> None:
    inventory = snapshot(three_hosts(tmp_path))
    cluster = inventory.cluster
    assert [h.name for h in cluster.hosts] == ["kvm-01", "kvm-02", "kvm-03"]
    assert cluster.host_by_name["kvm-01"].capacity[VCPUS] == 64  # 16 cpus x 4.0
    assert sorted(v.name for v in cluster.vms) == ["cache1", "db1", "web1", "web2"]  # not "old"
    assert cluster.vm_by_name["db1"].demand[MEMORY] == 16384 and inventory.conflicts == {}
    outcome = decide_plan(cluster, Goal.CONSOLIDATE, options=options)
    assert outcome.summary()["active_hosts_after"] == 1  # 32 GiB of VMs fit in one 64 GiB host
    assert check_plan(outcome.cluster, outcome.plan) == []


def test_migration_in_flight_and_running_twice(tmp_path: Path) -> None:
    src = write_host(tmp_path, 1, 8, 32, [Guest("vm1", 1024)])
    dst = write_host(tmp_path, 2, 8, 32, [Guest("vm1", 1024, state="paused")])
    reports = [probe(connect(src), "a"), probe(connect(dst), "b")]
    inventory = snapshot(reports)
    assert inventory.cluster.vm_by_name["vm1"].host == "a" and inventory.conflicts == {}
    twice = write_host(tmp_path, 3, 8, 32, [Guest("vm1", 1024)])
    inventory = snapshot([*reports, probe(connect(twice), "c")])
    assert inventory.conflicts == {"vm1": "vm1 is running on a, c"}
    held = [r for r in inventory.cluster.rules if "vm1" in r.vms]  # no plan moves it
    assert [(r.kind, r.vms) for r in held] == [("hold", ("vm1",))]


def test_host_states_carry_into_the_snapshot(tmp_path: Path) -> None:
    reports = three_hosts(tmp_path)
    cluster = snapshot(reports, states={"kvm-02": HostState.MAINTENANCE}).cluster
    assert cluster.host_by_name["kvm-02"].state is HostState.MAINTENANCE
