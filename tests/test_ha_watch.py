"""The HA reserve followed move by move: it must agree with a full check wherever that check
finds the reserve, and every restart placement it relies on must pass the checker."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduler.ha.reserve import check_ha
from scheduler.ha.watch import ReserveWatch, reserve_by_wave
from scheduler.model import Cluster
from scheduler.placement.packer import Packer
from scheduler.placement.state import PlacementState
from scheduler.planning.check import check_placement
from tests.conftest import cluster_of, hosts, vm


@st.composite
def ruled_clusters(draw: st.DrawFn) -> dict[str, Any]:
    """A few racked hosts, VMs of two apps, and the rules that reach across hosts (spread,
    affinity) beside those that look at one host (anti-affinity, pin)."""
    n_hosts = draw(st.integers(3, 7))
    rows = [
        {"name": f"h{i}", "cpus": 32, "memory": "64GiB", "labels": {"rack": f"r{i % 3}"}}
        for i in range(n_hosts)
    ]
    free = [64] * n_hosts
    vms: list[dict[str, Any]] = []
    for j in range(draw(st.integers(2, 16))):
        mem = draw(st.sampled_from([4, 8, 16, 24]))
        fits = [i for i in range(n_hosts) if free[i] >= mem]
        host = draw(st.sampled_from([*fits, None])) if fits else None
        row = vm(f"v{j}", f"{mem}GiB", labels={"app": "web" if j % 2 == 0 else "db"})
        if host is not None:
            free[host] -= mem
            row["host"] = f"h{host}"
        vms.append(row)
    placed = [row for row in vms if "host" in row]
    rules: list[dict[str, Any]] = []
    apart = list({row["host"]: row["name"] for row in placed}.values())
    if len(apart) >= 2 and draw(st.booleans()):
        rules.append({"type": "anti-affinity", "vms": apart[:3]})
    if draw(st.booleans()):
        rules.append({"type": "spread", "selector": {"app": "web"}, "label": "rack",
                      "max_per_domain": draw(st.integers(2, 4))})  # fmt: skip
    if placed and draw(st.booleans()):
        pinned = placed[-1]
        rules.append({"type": "pin", "vms": [pinned["name"]], "hosts": [pinned["host"], "h0"]})
    together = [row["name"] for row in placed if row["host"] == placed[0]["host"]]
    if len(together) >= 2 and draw(st.booleans()):
        rules.append({"type": "affinity", "vms": together[:2]})
    ha = draw(st.sampled_from([{"host_failures_to_tolerate": 1}, {"failure_domain": "rack"},
                               {"host_failures_to_tolerate": 2}]))  # fmt: skip
    return {"name": "watched", "hosts": rows, "vms": vms, "rules": rules, "policy": {"ha": ha}}


def certificates_pass_the_checker(cluster: Cluster, watch: ReserveWatch) -> None:
    location = watch.packer.state.placement()
    for name, restarts in watch.certificates.items():
        assert restarts is not None
        failed = watch.failed_hosts[name]
        after = location | {
            vm: restarts[vm] for vm, host in location.items() if host in failed
        }  # fmt: skip
        assert not set(after.values()) & set(failed)
        assert check_placement(cluster, after) == [], name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ruled_clusters(), st.lists(st.tuples(st.integers(0, 15), st.integers(0, 6)), max_size=12))
def test_the_watch_agrees_with_a_full_check_after_every_move(
    data: dict[str, Any], picks: list[tuple[int, int]]
) -> None:
    cluster = cluster_of(data)
    assume(check_placement(cluster, cluster.current_placement) == [])
    watch = ReserveWatch(cluster)
    assert watch.holds == check_ha(cluster).satisfied
    state = PlacementState(cluster, cluster.current_placement)
    for vm_index, host_index in picks:
        vm_name, host = f"v{vm_index}", f"h{host_index}"
        if vm_name not in cluster.vm_by_name or host not in cluster.host_by_name:
            continue
        source = state.host_of(vm_name)
        if source is not None:
            state.remove(vm_name, source)
        if not state.can_take(vm_name, host):  # a move the planner would not make
            if source is not None:
                state.add(vm_name, source)
            continue
        state.add(vm_name, host)
        before = watch.packer.state.placement()
        if not watch.try_moves([(vm_name, host)]):
            fresh = Packer(cluster, before)
            assert np.array_equal(fresh.free, watch.packer.free)  # a refusal leaves no trace
            assert watch.packer.state.placement() == before
            assert not watch.force([(vm_name, host)])
        now = cluster.moved_to(state.placement())
        if check_ha(now).satisfied:
            assert watch.holds
        if watch.holds:
            certificates_pass_the_checker(cluster, watch)


def test_a_move_onto_the_host_a_certificate_uses_is_looked_at_again() -> None:
    # Losing h1 restarts a (24 GiB) on h3, the only host with room; placing d there spoils it.
    cluster = cluster_of({
        "name": "spoil", "hosts": hosts(3), "policy": {"ha": {"host_failures_to_tolerate": 1}},
        "vms": [vm("a", "24GiB", "h1"), vm("b", "48GiB", "h2"), vm("c", "8GiB", "h2"),
                vm("d", "48GiB")],
    })  # fmt: skip
    watch = ReserveWatch(cluster)
    assert watch.holds and watch.certificates["h1"] == {"a": "h3"}
    assert watch.try_moves([("c", "h1")])
    assert not watch.try_moves([("d", "h3")])
    assert watch.try_moves([("c", "h2")])
    assert reserve_by_wave(cluster, [[("c", "h1")], [("d", "h3")]]) == [
        "wave 2: HA reserve broken: losing h1 would strand 1 VMs (a)"
    ]
