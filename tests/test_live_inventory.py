"""The in-memory inventory and the placement path on it: the vectors always equal a count
from scratch, racing placements never over-book a host, the rules that bind a new VM hold on
the fast path, and a restarted scheduler finds everything the store kept."""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.report import DomainReport, HostReport
from scheduler.model import DISK, MEMORY, VCPUS, Cluster, HaPolicy, Limits, Policy
from scheduler.scenario.policy import LivePolicy, parse_policy
from scheduler.service.exact_placement import exact_placement
from scheduler.service.group_commit import GroupCommit
from scheduler.service.inventory import rules_now
from scheduler.service.inventory import snapshot as build
from scheduler.service.live_inventory import LiveInventory
from scheduler.service.liveness import Heartbeat
from scheduler.service.placer import NewVM, PlacementPath, PlacementRefused, Placer
from scheduler.service.records import Claim
from scheduler.service.sqlite_store import SqliteStore

NOW = 1_000.0


def domain(name: str, vcpus: int, memory_gib: int, state: str = "running") -> DomainReport:
    return DomainReport(name, f"uuid-{name}", vcpus, memory_gib * 1024, 0, state, True, 0)


def host(name: str, domains: tuple[DomainReport, ...] = (), rack: str = "r1") -> HostReport:
    return HostReport(name, 16, 64 * 1024, 10**6, domains, labels={"rack": rack})


def fresh(overcommit: dict[str, float] | None = None) -> LiveInventory:
    return LiveInventory(Heartbeat(30, 120), 0.0, overcommit or {VCPUS: 1.0})


def placer(
    tmp_path: Path, inventory: LiveInventory, live: LivePolicy | None = None,
    path: PlacementPath = PlacementPath.FAST,
) -> Placer:  # fmt: skip
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(tmp_path / "vmpack.db")
    live = live or LivePolicy(Policy({VCPUS: 1.0}), Limits(), (), {})

    def snapshot() -> Cluster:  # the exact path's snapshot, as the runtime builds it
        claims, hosts = list(inventory.claims.values()), [r for r, _ in inventory.reports()]
        rules = rules_now(live, hosts, claims)
        return build(hosts, {}, live.policy, rules, claims=claims).cluster

    writes = GroupCommit(store.together)
    return Placer(inventory, store, writes, lambda: live, snapshot, lambda: NOW, lambda why: None,
                  path=path)  # fmt: skip


def test_the_vectors_follow_reports_and_claims() -> None:
    inventory = fresh()
    inventory.apply_report(host("a", (domain("x", 2, 8), domain("off", 4, 4, "shutoff"))), NOW)
    inventory.apply_report(host("b"), NOW)
    inventory.add_claim(Claim("new", "b", {VCPUS: 1, MEMORY: 2048}, NOW, NOW + 60))
    assert inventory.held.tolist() == [[2, 8192, 0], [0, 0, 0]]
    assert inventory.claimed.tolist() == [[0, 0, 0], [1, 2048, 0]]
    assert inventory.count.tolist() == [1, 1]
    # b reports the VM: its claim ends and the report holds it instead.
    ended = inventory.apply_report(host("b", (domain("new", 1, 2),)), NOW + 1)
    assert ended == ["new"] and inventory.claimed.sum() == 0
    assert inventory.held[1].tolist() == [1, 2048, 0] and inventory.count.tolist() == [1, 1]
    # An older report that arrives late changes nothing.
    assert inventory.apply_report(host("b"), NOW) == [] and inventory.count[1] == 1
    inventory.add_claim(Claim("later", "a", {VCPUS: 1}, NOW, NOW + 60))
    inventory.expire(NOW + 60)
    assert "later" not in inventory.claims and inventory.claimed.sum() == 0


reports = st.lists(
    st.tuples(
        st.sampled_from(["h1", "h2", "h3"]),
        st.lists(
            st.tuples(
                st.sampled_from("pqrstu"),
                st.integers(1, 4),
                st.integers(1, 8),
                st.sampled_from(["running", "paused", "shutoff"]),
            ),
            max_size=4,
            unique_by=lambda d: d[0],
        ),
        st.lists(st.tuples(st.sampled_from("vwxyz"), st.integers(1, 4)), max_size=2),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(reports)
def test_the_vectors_equal_a_count_from_scratch(steps: list[Any]) -> None:
    inventory = fresh()
    for at, (name, domains, claims) in enumerate(steps):
        inventory.apply_report(
            host(name, tuple(domain(d, c, m, s) for d, c, m, s in domains)), float(at)
        )
        for vm, vcpus in claims:
            if not inventory.exists(vm):
                inventory.add_claim(Claim(vm, name, {VCPUS: vcpus}, float(at), 1e9))
    for i, name in enumerate(inventory.hosts):
        report = inventory.report_of(name)
        assert report is not None
        holding = [d for d in report.domains if d.holds_resources]
        assert inventory.held[i].tolist() == [
            sum(d.vcpus for d in holding),
            sum(d.memory_mib for d in holding),
            0,
        ]
        claims = [c for c in inventory.claims.values() if c.host == name]
        assert inventory.claimed[i, 0] == sum(c.demand[VCPUS] for c in claims)
        assert inventory.count[i] == len({d.name for d in holding} | {c.vm for c in claims})
        assert set(inventory.vms_on(name)) == {d.name for d in holding} | {c.vm for c in claims}


def test_racing_placements_never_over_book_a_host(tmp_path: Path) -> None:
    inventory = fresh()
    for k in range(8):
        inventory.apply_report(host(f"h{k}", (domain(f"old{k}", 2, 8 * (k % 3)),)), NOW)
    place = placer(tmp_path, inventory)
    rng = random.Random(7)
    asks = [NewVM(f"new{k}", {VCPUS: rng.choice([1, 2, 4]), MEMORY: rng.choice([1, 4, 8]) * 1024})
            for k in range(200)]  # fmt: skip
    placed, refused = [], []
    gate = threading.Barrier(16)

    def worker(mine: list[NewVM]) -> None:
        gate.wait()
        for vm in mine:
            try:
                placed.append(place.place(vm))
            except PlacementRefused:
                refused.append(vm.name)

    threads = [threading.Thread(target=worker, args=(asks[k::16],)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(placed) + len(refused) == 200 and placed and refused
    assert (inventory.free() >= 0).all()  # no host holds more than it has
    stored = place.store.claims(NOW)
    assert sorted(c.vm for c in stored) == sorted(c.vm for c in placed)  # memory == store
    for i, name in enumerate(inventory.hosts):
        on_host = [c for c in placed if c.host == name]
        assert inventory.claimed[i, 1] == sum(c.demand[MEMORY] for c in on_host)


def test_best_fit_on_a_busy_host_before_an_empty_one(tmp_path: Path) -> None:
    inventory = fresh()
    inventory.apply_report(host("empty"), NOW)
    inventory.apply_report(host("roomy", (domain("a", 2, 8),)), NOW)
    inventory.apply_report(host("tight", (domain("b", 2, 56),)), NOW)
    place = placer(tmp_path, inventory)
    assert place.place(NewVM("fits-tight", {VCPUS: 1, MEMORY: 4096})).host == "tight"
    assert place.place(NewVM("only-roomy", {VCPUS: 1, MEMORY: 8192})).host == "roomy"
    assert place.place(NewVM("needs-empty", {VCPUS: 1, MEMORY: 60 * 1024})).host == "empty"
    with pytest.raises(PlacementRefused) as refused:
        place.place(NewVM("too-big", {VCPUS: 1, MEMORY: 60 * 1024}))
    assert refused.value.status == 409
    assert "too-big (needs 1 vcpus, 60.0 GiB memory): 3 hosts lack free memory_mib" in str(
        refused.value
    )
    with pytest.raises(PlacementRefused, match="name: VM 'a' already exists"):
        place.place(NewVM("a", {VCPUS: 1}))


def test_the_fast_path_honours_the_rules_that_bind_the_new_vm(tmp_path: Path) -> None:
    inventory = fresh()
    inventory.apply_report(host("h1", (domain("db-1", 2, 8),), rack="r1"), NOW)
    inventory.apply_report(host("h2", (domain("web", 2, 8),), rack="r1"), NOW)
    inventory.apply_report(host("h3", (domain("other", 2, 8),), rack="r2"), NOW)
    inventory.apply_report(host("h4", rack="r3"), NOW)
    live = parse_policy(
        "rules:\n"
        "  - {type: anti-affinity, vms: [db-1, db-2, db-3]}\n"
        "  - {type: spread, vms: [db-1, db-2, db-3], label: rack, max_per_domain: 1}\n"
        "  - {type: affinity, vms: [web, web-cache]}\n"
        "  - {type: ban, vms: [db-3], hosts: [h4]}\n"
    )
    place = placer(tmp_path, inventory, live)
    # db-2 may not share a rack with db-1 (h1, h2 in r1): best fit among busy hosts is h3.
    assert place.place(NewVM("db-2", {VCPUS: 1, MEMORY: 1024})).host == "h3"
    assert place.place(NewVM("web-cache", {VCPUS: 1, MEMORY: 1024})).host == "h2"
    # db-3: r1 and r2 are taken, and the only host of r3 is banned to it.
    with pytest.raises(PlacementRefused) as refused:
        place.place(NewVM("db-3", {VCPUS: 1, MEMORY: 1024}))
    assert "excluded by" in refused.value.reason and "spread #2" in refused.value.reason


def test_under_an_ha_policy_the_reserve_decides(tmp_path: Path) -> None:
    inventory = fresh()
    inventory.apply_report(host("h1", (domain("a", 2, 40),)), NOW)
    inventory.apply_report(host("h2", (domain("b", 2, 20),)), NOW)
    live = LivePolicy(Policy({VCPUS: 1.0}, HaPolicy(1)), Limits(), (), {})
    place = placer(tmp_path, inventory, live)
    # 20 GiB more on either host: losing one strands VMs (80 GiB for 64 on the other).
    with pytest.raises(PlacementRefused, match="HA reserve"):
        place.place(NewVM("big", {VCPUS: 1, MEMORY: 20 * 1024}))
    assert place.place(NewVM("small", {VCPUS: 1, MEMORY: 1024})).host in ("h1", "h2")


def test_both_paths_agree_on_the_host_for_one_vm(tmp_path: Path) -> None:
    rng = random.Random(3)
    for trial in range(5):
        inventory = fresh()
        for k in range(12):
            vms = tuple(
                domain(f"v{k}-{j}", 1, rng.choice([2, 4, 8])) for j in range(rng.randrange(4))
            )
            inventory.apply_report(host(f"h{k:02d}", vms), NOW)
        fast = placer(tmp_path / f"f{trial}", inventory)
        exact = placer(tmp_path / f"e{trial}", inventory, path=PlacementPath.SOLVER)
        for k in range(3):
            vm = NewVM(f"n{k}", {VCPUS: 1, MEMORY: rng.choice([4, 16, 30]) * 1024})
            chosen = fast._fast(vm, fast.policy(), NOW)[0]
            hosts, _why = exact_placement(exact.snapshot(), (vm,), exact.policy(), 1)
            assert chosen is not None and hosts is not None
            solved = hosts[vm.name]
            # Both keep empty hosts empty when a busy one has room.
            busy = {h for h in inventory.hosts if inventory.count[inventory.index[h]] > 0}
            assert (chosen in busy) == (solved in busy), (chosen, solved)
            free = inventory.free()[inventory.index[chosen]]
            assert (free >= np.array([1, vm.demand[MEMORY], 0])).all()


def test_a_restart_finds_reports_states_and_claims_again(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vmpack.db")
    store.save_report(host("h1", (domain("x", 2, 8),)), NOW)
    store.save_report(host("h2"), NOW)
    store.add_claim(Claim("x", "h1", {VCPUS: 2}, NOW, NOW + 60))  # h1 reports it already
    store.add_claim(Claim("y", "h2", {VCPUS: 1, DISK: 10}, NOW, NOW + 60))
    inventory = fresh()
    ended = inventory.load(store.reports(), store.host_states(), store.claims(NOW))
    assert ended == ["x"]
    assert inventory.claimed.tolist() == [[0, 0, 0], [1, 0, 10]]
    assert inventory.report_times() == {"h1": NOW, "h2": NOW}
