"""Capacity what-ifs: each change does what it says, the answer's figures add up, and bad
changes are one clear line with exit status 2."""

from __future__ import annotations

import json

import pytest

from scheduler.model import MEMORY, VCPUS, HostState
from scheduler.planning.check import check_plan
from scheduler.whatif.capacity import answer, headroom
from scheduler.whatif.changes import WhatIfError, apply_changes, parse_changes
from tests.conftest import ROOT, cluster_of, hosts, vm
from tests.test_cli import vmpack
from tests.test_properties import FAST

RACKED = [{"name": f"h{i}", "cpus": 16, "memory": "64GiB", "labels": {"rack": f"r{i % 2}"}}
          for i in range(1, 5)]  # fmt: skip
BASE = {
    "name": "w",
    "hosts": RACKED,
    "vms": [vm(f"v{i}", "16GiB", f"h{1 + i % 4}") for i in range(8)],
}


def test_each_change_does_what_it_says() -> None:
    cluster = cluster_of(BASE)
    changes = parse_changes(overcommit="cpu=2", remove_hosts="h4", fail="rack=r1", grow="memory=50%",
                            add=["3x2vcpu/4GiB/10GiB"])  # fmt: skip
    changed = apply_changes(cluster, changes)
    assert [h.name for h in changed.hosts] == ["h1", "h2", "h3"]  # h4 retired
    assert {h.name for h in changed.hosts if h.state is HostState.DOWN} == {"h1", "h3"}  # rack r1
    assert all(h.capacity[VCPUS] == 32 for h in changed.hosts)  # 16 cpus x 2
    assert changed.vm_by_name["v0"].demand[MEMORY] == 24 * 1024
    assert changed.vm_by_name["v3"].host is None  # it ran on h4
    assert [v.name for v in changed.vms if v.name.startswith("whatif-")] == [
        "whatif-1-0001", "whatif-1-0002", "whatif-1-0003"]  # fmt: skip


def test_a_bigger_host_model_needs_fewer_hosts_and_the_plan_checks() -> None:
    cluster = cluster_of(BASE)
    today = answer(cluster, FAST)
    bigger = answer(apply_changes(cluster, parse_changes(host_model="32cpu/256GiB/1TiB")), FAST)
    assert (today.hosts_needed, bigger.hosts_needed) == (2, 1)
    assert bigger.outcome.summary()["lower_bound"] == 1
    assert check_plan(bigger.outcome.cluster, bigger.outcome.plan) == []
    grown = answer(apply_changes(cluster, parse_changes(add=["8x4vcpu/16GiB"])), FAST)
    assert grown.hosts_needed == 4 and grown.ha_holds is False  # full: no room for a failure


def test_stranded_capacity_is_what_the_usual_vm_cannot_use() -> None:
    # One host: 64 vCPUs after overcommit, 64 GiB; its VMs take all memory and 8 vCPUs.
    cluster = cluster_of({"name": "s", "hosts": hosts(1), "vms": [
        vm("a", "32GiB", "h1", vcpus=4), vm("b", "32GiB", "h1", vcpus=4)]})  # fmt: skip
    cpu, memory, _disk = headroom(cluster, ("h1",))
    assert (cpu.capacity, cpu.allocated, cpu.free, cpu.stranded) == (64, 8, 56, 56)
    assert (memory.free, memory.stranded) == (0, 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"add": ["300x4cpu/16GiB"]}, "--add: expected COUNTxVCPUSvcpu/MEMORY[/DISK]"),
        ({"add": ["2x2vcpu/16GB!"]}, "--add: must be a size like"),
        ({"grow": "cpu=lots"}, "--grow: 'lots' is not a percentage"),
        ({"grow": "gpu=10%"}, "--grow: expected cpu=, memory= or disk=, got 'gpu=10%'"),
        ({"overcommit": "cpu=0"}, "--overcommit: a ratio must be positive, got 0"),
        ({"host_model": "big"}, "--host-model: expected CPUScpu/MEMORY[/DISK]"),
    ],
)
def test_unreadable_changes_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(WhatIfError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_changes(**kwargs)  # type: ignore[arg-type]


def test_changes_naming_nothing_are_refused() -> None:
    cluster = cluster_of(BASE)
    with pytest.raises(WhatIfError, match="--remove-hosts: no host matches 'kvm-0\\*'"):
        apply_changes(cluster, parse_changes(remove_hosts="kvm-0*"))
    with pytest.raises(WhatIfError, match="--fail: no host has the label rack=r9"):
        apply_changes(cluster, parse_changes(fail="rack=r9"))


def test_whatif_on_the_command_line() -> None:
    scenario = str(ROOT / "scenarios" / "web-tier-consolidation.yaml")
    run = vmpack("whatif", scenario, "--add", "20x4vcpu/16GiB/100GiB", "--grow", "memory=10%",
                 "--time-limit", "10", "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["hosts_needed"] >= result["hosts_lower_bound"] >= 1
    assert {h["resource"] for h in result["headroom"]} == {"vcpus", "memory_mib", "disk_mib"}
    assert result["plan"]["placements"] >= 20
    bad = vmpack("whatif", scenario, "--fail", "rack=r9")
    assert (
        bad.returncode == 2
        and bad.stderr == "vmpack: error: --fail: no host has the label rack=r9\n"
    )
