"""The HA reserve followed through a plan, move by move, without re-checking every failure.

``check_ha`` answers for one snapshot by re-placing the VMs of every failure: seconds on a
1,000-host cluster, while the wave planner asks about every move it considers. The watch
keeps, for each failure, the restart placement that last showed it covered (its
*certificate*) and after a move asks again only about the failures the move can spoil:

- those whose failed hosts a move leaves or enters (the VMs to restart changed);
- those whose certificate restarts a VM on a host a move enters (less room, new neighbours);
- those whose VMs share a group rule (affinity, spread) with a moving VM, since a group rule
  reaches across hosts;
- those not covered at the last look.

A host a VM leaves only gains room, and pins, bans and anti-affinity look at one host, so no
other certificate can break. A spoiled certificate is first replayed as it stands (room,
host state and every hard rule, through the same ``PlacementState`` the planner uses), then
mended (the VMs it can no longer place, or did not know, placed best fit), and only if that
fails is the failure re-placed from scratch, as ``check_ha`` would. A reserve
the watch reports held is therefore backed by a concrete, checked restart placement for
every failure; the failure sets themselves are fixed when the watch starts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from scheduler.ha.reserve import as_failures_see_it, failure_groups, lifted, restart_elsewhere
from scheduler.model import Cluster
from scheduler.placement.packer import Packer, place_pending
from scheduler.rules import Rule

Moves = Sequence[tuple[str, str]]  # (VM, the host it goes to)
Certificate = dict[str, str]  # VM -> the host it restarts on


class ReserveWatch:
    def __init__(self, cluster: Cluster) -> None:
        cluster = as_failures_see_it(cluster)
        self.packer = Packer(cluster, cluster.current_placement)
        self.vm_order = {vm.name: i for i, vm in enumerate(cluster.vms)}
        groups, _ = failure_groups(cluster, cluster.policy.ha)
        self.failed_hosts = dict(groups)
        self.by_member: dict[str, set[str]] = {}
        for name, hosts in groups:
            for host in hosts:
                self.by_member.setdefault(host, set()).add(name)
        # Per failure: where its VMs restart, or None while some VM would be stranded.
        self.certificates: dict[str, Certificate | None] = {}
        self.stranded: dict[str, tuple[str, ...]] = {}
        self.by_target: dict[str, set[str]] = {}
        self.by_rule: dict[int, set[str]] = {}
        for name, _hosts in groups:
            self._set(name, *self._restart(name))

    @property
    def holds(self) -> bool:
        return not self.stranded

    def breach(self) -> str:
        """The failure that strands the most VMs, in words."""
        name, stranded = max(sorted(self.stranded.items()), key=lambda item: len(item[1]))
        return (
            f"HA reserve broken: losing {name} would strand {len(stranded)} VMs "
            f"({', '.join(stranded[:4])})"
        )

    def try_moves(self, moves: Moves) -> bool:
        """Make ``moves`` if the reserve still holds after them; otherwise change nothing."""
        origin = self._apply(moves)
        replaced: dict[str, tuple[Certificate | None, tuple[str, ...]]] = {}
        for name in sorted(self._spoilable(moves, origin)):
            certificate, stranded = self._cover(name)
            if stranded:
                for old_name, (old, old_stranded) in replaced.items():
                    self._set(old_name, old, old_stranded)
                for vm, home in origin.items():
                    self.packer.unplace(vm)
                    if home is not None:
                        self.packer.move(vm, home)
                return False
            if certificate is not self.certificates[name]:
                replaced[name] = (self.certificates[name], self.stranded.get(name, ()))
                self._set(name, certificate, ())
        return True

    def force(self, moves: Moves) -> bool:
        """Make ``moves`` whatever becomes of the reserve; returns whether it holds
        (``stranded`` names the failures that would strand VMs)."""
        origin = self._apply(moves)
        for name in sorted(self._spoilable(moves, origin)):
            self._set(name, *self._cover(name))
        return self.holds

    def force_wave(self, wave: Moves) -> bool:
        """``force`` one unit of the wave at a time (the VMs of a hard affinity group
        together), as the planner makes them, so that both reach the same certificates."""
        held = self.holds
        for unit in self._units(wave):
            held = self.force(unit)
        return held

    def _units(self, wave: Moves) -> list[list[tuple[str, str]]]:
        units: list[list[tuple[str, str]]] = []
        rules_of = self.packer.state.rules_of
        for vm, target in wave:
            group = {id(r) for r in rules_of.get(vm, ()) if r.wave_group}
            previous = units[-1][-1][0] if units else None
            if previous and group & {id(r) for r in rules_of.get(previous, ())}:
                units[-1].append((vm, target))
            else:
                units.append([(vm, target)])
        return units

    def _apply(self, moves: Moves) -> dict[str, str | None]:
        origin = {vm: self.packer.state.host_of(vm) for vm, _ in moves}
        for vm, target in moves:
            self.packer.move(vm, target)
        return origin

    def _spoilable(self, moves: Moves, origin: dict[str, str | None]) -> set[str]:
        names = set(self.stranded)
        entered = {target for _, target in moves}
        for host in entered | {h for h in origin.values() if h}:
            names |= self.by_member.get(host, set())
        for host in entered:
            names |= self.by_target.get(host, set())
        for rule in self._group_rules(origin):
            names |= self.by_rule.get(id(rule), set())
        return names

    def _group_rules(self, vms: Iterable[str]) -> list[Rule]:
        rules_of = self.packer.state.rules_of
        return [rule for vm in vms for rule in rules_of.get(vm, ()) if not rule.host_local]

    def _set(self, name: str, certificate: Certificate | None, stranded: tuple[str, ...]) -> None:
        old = self.certificates.get(name)
        if old is not None:
            for host in set(old.values()):
                self.by_target[host].discard(name)
            for rule in self._group_rules(old):
                self.by_rule[id(rule)].discard(name)
        self.certificates[name] = certificate
        if stranded or certificate is None:
            self.stranded[name] = stranded
            return
        self.stranded.pop(name, None)
        for host in set(certificate.values()):
            self.by_target.setdefault(host, set()).add(name)
        for rule in self._group_rules(certificate):
            self.by_rule.setdefault(id(rule), set()).add(name)

    def _victims(self, name: str) -> tuple[str, ...]:
        # In the order check_ha takes them, so that both re-place them alike.
        residents, order = self.packer.state.residents, self.vm_order
        return tuple(
            vm
            for host in self.failed_hosts[name]
            for vm in sorted(residents[host], key=order.__getitem__)
        )

    def _cover(self, name: str) -> tuple[Certificate | None, tuple[str, ...]]:
        """A certificate for the failure as things are now: the current one if it still
        replays, else the current one mended, else a re-placement from scratch."""
        current = self.certificates[name]
        if current is not None:
            victims = self._victims(name)
            if self._fits_as_is(current, victims):
                return current, ()
            mended = self._mended(name, current, victims)
            if mended is not None:
                return mended, ()
        return self._restart(name)

    def _restart(self, name: str) -> tuple[Certificate | None, tuple[str, ...]]:
        victims = self._victims(name)
        restarts, _ = restart_elsewhere(self.packer, self.failed_hosts[name], victims)
        stranded = tuple(vm for vm in victims if vm not in restarts)
        return (None if stranded else restarts), stranded

    def _fits_as_is(self, restarts: Certificate, victims: Sequence[str]) -> bool:
        """Does the certificate still hold, judged on capacity alone in one sum? False as
        soon as it misses a VM or a VM is under a hard rule: those need the replay."""
        packer = self.packer
        if not victims:
            return True
        if any(vm not in restarts or packer.state.rules_of.get(vm) for vm in victims):
            return False
        targets = np.array([packer.index[restarts[vm]] for vm in victims], dtype=np.int64)
        if not packer.open[targets].all():
            return False
        arriving = np.zeros_like(packer.free)
        np.add.at(arriving, targets, np.array([packer.demand(vm) for vm in victims]))
        return bool((arriving[targets] <= packer.free[targets]).all())

    def _mended(
        self, name: str, restarts: Certificate, victims: Sequence[str]
    ) -> Certificate | None:
        """Replay the certificate move by move (room, host state, every hard rule), then
        place best fit the VMs it does not know or can no longer place where it says; None
        when one of those finds no host."""
        packer = self.packer
        with lifted(packer, self.failed_hosts[name], victims):
            unsettled = []
            for vm in victims:
                host = restarts.get(vm)
                if host is not None and packer.can_take(vm, host):
                    packer.move(vm, host)
                else:
                    unsettled.append(vm)
            if place_pending(packer, unsettled):
                return None
            return {vm: str(packer.state.host_of(vm)) for vm in victims}


def reserve_by_wave(cluster: Cluster, waves: Sequence[Moves]) -> list[str]:
    """The HA reserve after each wave of a plan, if it held before the first: one line per
    wave that breaks it."""
    if not cluster.policy.ha.required:
        return []
    watch = ReserveWatch(cluster)
    if not watch.holds:
        return []
    problems = []
    for number, wave in enumerate(waves, start=1):
        if not watch.force_wave(wave):
            problems.append(f"wave {number}: {watch.breach()}")
    return problems
