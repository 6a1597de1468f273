"""Random rules on a live snapshot: agent reports (labels from metadata, countable resources,
VMs with host devices) and a random policy file, built into the snapshot as the service
builds it; every plan of every goal must pass the solver-free checker, as it must before
the service keeps it, and no plan moves a VM with a host device."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agents.report import DomainReport, HostReport
from scheduler.engine import decide_plan
from scheduler.model import Goal
from scheduler.planning.check import check_plan
from scheduler.scenario.load import ScenarioError
from scheduler.scenario.policy import parse_policy
from scheduler.service.inventory import rules_now, snapshot
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions

HOSTS = 4
VMS = 7
APPS = ("web", "db", "")


def vm_name(i: int) -> str:
    return f"v{i}"


rule = st.one_of(
    st.builds(lambda vms: {"type": "anti-affinity", "vms": vms},
              st.lists(st.integers(0, VMS + 1).map(vm_name), min_size=2, max_size=3, unique=True)),
    st.builds(lambda vms: {"type": "affinity", "vms": vms},
              st.lists(st.integers(0, VMS - 1).map(vm_name), min_size=2, max_size=2, unique=True)),
    st.builds(lambda app, most: {"type": "spread", "selector": {"app": app}, "label": "rack",
                                 "max_per_domain": most},
              st.sampled_from(APPS[:2]), st.integers(1, 3)),
    st.builds(lambda app: {"type": "anti-affinity", "selector": {"app": app}},
              st.sampled_from(APPS[:2])),
    st.builds(lambda vm, h: {"type": "ban", "vms": [vm], "hosts": [f"h{h}"]},
              st.integers(0, VMS - 1).map(vm_name), st.integers(0, HOSTS - 1)),
    st.builds(lambda vm, hs: {"type": "pin", "vms": [vm], "hosts": [f"h{h}" for h in hs]},
              st.integers(0, VMS - 1).map(vm_name),
              st.lists(st.integers(0, HOSTS - 1), min_size=2, max_size=3, unique=True)),
    st.builds(lambda vms: {"type": "anti-affinity", "vms": vms, "soft": True},
              st.lists(st.integers(0, VMS - 1).map(vm_name), min_size=2, max_size=3, unique=True)),
)  # fmt: skip


def reports(where: list[int], apps: list[int], gpu: int, fixed: int) -> list[HostReport]:
    """Four hosts on two racks, h0 with two GPUs; VM ``gpu`` takes one, VM ``fixed`` has a
    host device and cannot be live-migrated. Even all on one host, the VMs fit: what is
    tested is the rules, not a start that is over-full already."""
    domains: dict[int, list[DomainReport]] = {h: [] for h in range(HOSTS)}
    for i, host in enumerate(where):
        app = APPS[apps[i]]
        domains[0 if i == gpu else host].append(
            DomainReport(
                vm_name(i), f"uuid-{i}", 2, 2048, 0, "running", True, 0,
                labels={"app": app} if app else {},
                resources={"gpu": 1} if i == gpu else {},
                migratable=i != fixed,
            )
        )  # fmt: skip
    return [
        HostReport(
            f"h{h}",
            8,
            16384,
            0,
            tuple(domains[h]),
            labels={"rack": f"r{h % 2}"},
            resources={"gpu": 2} if h == 0 else {},
        )
        for h in range(HOSTS)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.lists(st.integers(0, HOSTS - 1), min_size=VMS, max_size=VMS),
    apps=st.lists(st.integers(0, len(APPS) - 1), min_size=VMS, max_size=VMS),
    gpu=st.integers(0, VMS - 1),
    fixed=st.integers(0, VMS - 1),
    rules=st.lists(rule, max_size=4),
    goal=st.sampled_from([Goal.CONSOLIDATE, Goal.BALANCE, Goal.REPAIR, Goal.EVACUATE]),
)
def test_every_plan_on_a_live_snapshot_passes_the_checker(
    where: list[int], apps: list[int], gpu: int, fixed: int, rules: list[dict[str, object]],
    goal: Goal,
) -> None:  # fmt: skip
    text = yaml.safe_dump({"rules": rules, "limits": {"max_parallel_per_host": 1}})
    try:
        policy = parse_policy(text, "policy.yaml")
    except ScenarioError:
        assume(False)  # contradictory hard rules: the service refuses the file too
        return
    facts = reports(where, apps, gpu, fixed)
    inventory = snapshot(facts, policy=policy.policy, rules=rules_now(policy, facts, []),
                         limits=policy.limits)  # fmt: skip
    cluster = inventory.cluster
    drained = ("h1",) if goal is Goal.EVACUATE else ()
    options = SearchOptions(SolverSettings(1.0, 1))
    outcome = decide_plan(cluster, goal, drained, options)
    assert check_plan(outcome.cluster, outcome.plan) == []
    fixed_vm = vm_name(fixed)
    assert all(m.vm != fixed_vm for m in outcome.plan.moves)
    gpu_host = outcome.decision.placement.get(vm_name(gpu))
    assert gpu_host in ("h0", None)  # only h0 has GPUs
