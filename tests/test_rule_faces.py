"""Every rule's four faces agree, on generated clusters: the static host filter
(``host_allowed``), the incremental check (``admits``), the full check (``violations``) and
the CP-SAT encoding (a real solve of a model where one VM may go to one host).

Each case holds one hard rule, every VM placed with the rule kept, and one VM taken off to
be put back: then "the rule admits it on h" must mean "the placement with it on h has no
violation" and "the model with it forced onto h is feasible". Hosts are large and each has
a label of its own, so neither capacity nor the model's symmetry breaking has a say.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ortools.sat.python import cp_model

from scheduler.model import Cluster, Host
from scheduler.placement.state import PlacementState
from scheduler.rules import Affinity, AntiAffinity, Ban, Pin, Rule, Spread
from scheduler.solver.cpsat.encoding import Encoding
from scheduler.solver.scope import make_scope
from tests.conftest import cluster_of

HOSTS = 4
VMS = 6


@st.composite
def one_rule_cases(draw: st.DrawFn) -> tuple[Cluster, str]:
    """A cluster with one hard rule that its placement keeps, and the VM to put back."""
    hosts = [
        {"name": f"h{i}", "cpus": 256, "memory": "1TiB",
         "labels": {"rack": f"r{i % 2}", "id": f"h{i}"}}
        for i in range(HOSTS)
    ]  # fmt: skip
    names = [f"v{j}" for j in range(VMS)]
    where = {vm: f"h{draw(st.integers(0, HOSTS - 1))}" for vm in names}
    members = tuple(draw(st.lists(st.sampled_from(names), min_size=2, max_size=4, unique=True)))
    listed = tuple(
        draw(st.lists(st.sampled_from([h["name"] for h in hosts]), min_size=1, unique=True))
    )
    rule: Rule = draw(
        st.sampled_from(
            [
                AntiAffinity(1, members),
                Affinity(1, members),
                Spread(1, members, label_key="rack", max_per_domain=draw(st.integers(1, 2))),
                Pin(1, members, hosts=listed),
                Ban(1, members, hosts=listed),
            ]
        )
    )
    vms = [{"name": vm, "vcpus": 1, "memory": "1GiB", "host": where[vm]} for vm in names]
    cluster = replace(cluster_of({"name": "faces", "hosts": hosts, "vms": vms}), rules=(rule,))
    put_back = draw(st.sampled_from(members))
    return cluster, put_back


def _without(cluster: Cluster, vm: str) -> dict[str, str | None]:
    return {**cluster.current_placement, vm: None}


def _solver_admits(cluster: Cluster, vm: str, host: str) -> bool:
    rest = _without(cluster, vm)
    hosts = [h.name for h in cluster.hosts]
    scope = make_scope(cluster, [vm], hosts, rest, waiting=(), leaving=())
    enc = Encoding(cluster, scope)
    if (vm, host) not in enc.x:
        return False  # filtered out before the model: no variable for it
    enc.model.add(enc.x[vm, host] == 1)
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    status = solver.solve(enc.model)
    assert status != cp_model.UNKNOWN
    return status in (cp_model.OPTIMAL, cp_model.FEASIBLE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(one_rule_cases())
def test_filter_incremental_check_full_check_and_encoding_agree(
    case: tuple[Cluster, str],
) -> None:
    cluster, vm = case
    (rule,) = cluster.rules
    rest = PlacementState(cluster, _without(cluster, vm))
    assume(rule.violations(cluster, rest) == [])  # the other VMs keep the rule
    spec = cluster.vm_by_name[vm]
    for host in cluster.hosts:
        admitted = rule.host_allowed(spec, host) and rule.admits(cluster, vm, host.name, rest)
        placed = PlacementState(cluster, {**_without(cluster, vm), vm: host.name})
        kept = rule.violations(cluster, placed) == []
        assert admitted == kept, f"{rule.label}: {vm} on {host.name}"
        assert _solver_admits(cluster, vm, host.name) == kept, f"{rule.label}: {vm} on {host.name}"
        if not rule.host_allowed(spec, host):
            assert not kept  # the filter refuses only what the rule forbids
        _check_properties(rule, cluster, vm, host, rest)


def _check_properties(
    rule: Rule, cluster: Cluster, vm: str, host: Host, rest: PlacementState
) -> None:
    """What other stages read from a rule instead of asking which rule it is."""
    if rule.only_filters_hosts:
        # Decided by the host alone: the rest of the placement does not matter.
        empty = PlacementState(cluster, {v: None for v in cluster.current_placement})
        verdict = rule.admits(cluster, vm, host.name, rest)
        assert verdict == rule.admits(cluster, vm, host.name, empty)
        assert verdict == rule.host_allowed(cluster.vm_by_name[vm], host)
    if rule.host_local:
        # Only the VMs on this host count: moving the others between other hosts changes
        # nothing.
        others = {v: h for v, h in rest.placement().items() if h != host.name}
        elsewhere = next(h.name for h in cluster.hosts if h.name != host.name)
        moved = {**rest.placement(), **{v: elsewhere for v, h in others.items() if h}}
        shifted = PlacementState(cluster, moved)
        assert rule.admits(cluster, vm, host.name, rest) == rule.admits(
            cluster, vm, host.name, shifted
        )
    assert set(rule.wave_group) <= set(rule.vms)
    assert rule.min_hosts(rule.vms) <= len(rule.vms)
