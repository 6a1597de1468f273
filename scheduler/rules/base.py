"""What every placement rule offers: a host filter, an incremental check, a full check and
its CP-SAT encoding. The solver, the planner and the checker each use a different face, so
a bug in one is caught by another.

A *view* tells where each VM is present. During a live migration a VM is present on both its
source and its destination, so rules that must hold during a plan ("continuous" rules in
BtrPlace's sense) are checked on presence sets, not on a single host per VM.

What the other stages need to know about a rule is a property of the rule, so that no module
outside ``rules/`` asks which rule it holds: whether it only filters hosts, whether its
verdict depends on one host alone, whether its VMs move in one wave, whether it still binds
a VM that restarts after a host failure, and how many hosts its VMs need at least.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from ortools.sat.python import cp_model

from scheduler.model import VM, Cluster, Host

# What the rules add up: a 0/1 variable, a sum of them, or a constant for a VM held in place.
Expr = cp_model.LinearExpr | cp_model.IntVar | int


class PlacementView(Protocol):
    def hosts_of(self, vm: str) -> Collection[str]: ...

    def vms_on(self, host: str) -> Collection[str]: ...


class RuleEncoding(Protocol):
    """The part of the CP-SAT model a rule posts into (``solver.cpsat.encoding.Encoding``)."""

    @property
    def cluster(self) -> Cluster: ...

    @property
    def model(self) -> cp_model.CpModel: ...

    def placed_on(self, vm: str, host: str) -> Expr: ...

    def count_on(self, vms: Collection[str], host: str) -> Expr: ...

    def hosts_touching(self, vms: Collection[str]) -> list[str]: ...


class RuleFields(Protocol):
    """A rule as a scenario file writes it (``scenario.schema.RuleSpec``)."""

    @property
    def soft(self) -> bool: ...

    @property
    def weight(self) -> int: ...

    @property
    def hosts(self) -> Sequence[str]: ...

    @property
    def label(self) -> str | None: ...

    @property
    def max_per_domain(self) -> int | None: ...

    @property
    def selector(self) -> Mapping[str, str]: ...


@dataclass(frozen=True)
class Penalty:
    """A soft rule's cost in the objective: ``weight`` times ``amount`` (a CP-SAT expression)."""

    amount: Expr
    weight: int


@dataclass(frozen=True)
class Rule(ABC):
    position: int  # 1-based index in the scenario's rule list, used to name the rule
    vms: tuple[str, ...]
    soft: bool = False
    weight: int = 1

    kind: ClassVar[str] = "rule"
    # A hard rule of this kind is decided by ``host_allowed`` alone (pin, ban): searches that
    # only move VMs between hosts may treat it as a list of allowed hosts.
    only_filters_hosts: ClassVar[bool] = False
    # ``admits`` looks at the one host only, never at where the other VMs are elsewhere.
    host_local: ClassVar[bool] = False
    # The VMs of a hard rule of this kind move in one wave (affinity).
    moves_together: ClassVar[bool] = False
    # Still binds a VM restarted after its host failed (a hold does not: it keeps VMs in
    # place for plans, but a failed host's VMs restart wherever they can).
    binds_restarts: ClassVar[bool] = True

    @classmethod
    def from_fields(cls, position: int, vms: tuple[str, ...], fields: RuleFields) -> Rule:
        """The rule as a scenario file gives it; kinds with more fields extend this."""
        return cls(position, vms, fields.soft, fields.weight)

    @property
    def label(self) -> str:
        shown = ", ".join(self.vms[:4]) + (", ..." if len(self.vms) > 4 else "")
        return f"{self.kind} #{self.position} ({shown})"

    @property
    def wave_group(self) -> tuple[str, ...]:
        """VMs that must move in the same wave because of this rule (none for most)."""
        return self.vms if self.moves_together and not self.soft else ()

    @property
    def named_hosts(self) -> tuple[str, ...]:
        """Hosts the rule names: they are not interchangeable with hosts it does not name."""
        return ()

    def host_allowed(self, vm: VM, host: Host) -> bool:
        """Static per-host filter: may this VM ever be on this host? Soft rules never filter."""
        return True

    def min_hosts(self, vms: Collection[str]) -> int:
        """Hosts that ``vms`` need at least because of this rule (a lower bound)."""
        return 0

    @abstractmethod
    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        """Would making ``vm`` present on ``host`` (in addition to where it is) keep the rule?"""

    @abstractmethod
    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        """Every way the rule is broken in ``view``; written without the solver on purpose."""

    @abstractmethod
    def encode(self, enc: RuleEncoding) -> list[Penalty]:
        """Post the hard constraints, or return the penalties of a soft rule."""

    def concerns(self, vm: str) -> bool:
        return vm in self.vms
