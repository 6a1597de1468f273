"""What every placement rule offers: a host filter, an incremental check, a full check and
its CP-SAT encoding. The solver, the planner and the checker each use a different face, so
a bug in one is caught by another.

A *view* tells where each VM is present. During a live migration a VM is present on both its
source and its destination, so rules that must hold during a plan ("continuous" rules in
BtrPlace's sense) are checked on presence sets, not on a single host per VM.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from scheduler.model import VM, Cluster, Host

if TYPE_CHECKING:
    from scheduler.solver.cpsat.encoding import Encoding


class PlacementView(Protocol):
    def hosts_of(self, vm: str) -> Collection[str]: ...

    def vms_on(self, host: str) -> Collection[str]: ...


@dataclass(frozen=True)
class Penalty:
    """A soft rule's cost in the objective: ``weight`` times ``amount`` (a CP-SAT expression)."""

    amount: object
    weight: int


@dataclass(frozen=True)
class Rule(ABC):
    position: int  # 1-based index in the scenario's rule list, used to name the rule
    vms: tuple[str, ...]
    soft: bool = False
    weight: int = 1

    kind = "rule"

    @property
    def label(self) -> str:
        shown = ", ".join(self.vms[:4]) + (", ..." if len(self.vms) > 4 else "")
        return f"{self.kind} #{self.position} ({shown})"

    def host_allowed(self, vm: VM, host: Host) -> bool:
        """Static per-host filter: may this VM ever be on this host? Soft rules never filter."""
        return True

    @abstractmethod
    def admits(self, cluster: Cluster, vm: str, host: str, view: PlacementView) -> bool:
        """Would making ``vm`` present on ``host`` (in addition to where it is) keep the rule?"""

    @abstractmethod
    def violations(self, cluster: Cluster, view: PlacementView) -> list[str]:
        """Every way the rule is broken in ``view``; written without the solver on purpose."""

    @abstractmethod
    def encode(self, enc: Encoding) -> list[Penalty]:
        """Post the hard constraints, or return the penalties of a soft rule."""

    def concerns(self, vm: str) -> bool:
        return vm in self.vms


def present_elsewhere(view: PlacementView, vm: str, host: str) -> bool:
    return any(h != host for h in view.hosts_of(vm))
