"""Heartbeats: how a host's state follows the age of its last report (pure).

A host whose agent stops reporting becomes ``suspect`` after ``suspect_after_s`` (nothing new
is placed there) and ``down`` after ``down_after_s``. A state an operator set (maintenance)
stays as set, but a host that has stopped reporting is still shown as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduler.model import HostState


@dataclass(frozen=True)
class Heartbeat:
    suspect_after_s: float = 30.0
    down_after_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.suspect_after_s < self.down_after_s:
            raise ValueError("heartbeat: need 0 < suspect_after_s < down_after_s")

    def state(self, operator_state: HostState, reported_at: float | None, now: float) -> HostState:
        if operator_state is HostState.STANDBY:
            return operator_state  # switched off on purpose: its silence is expected
        if reported_at is None:
            return HostState.DOWN
        age = now - reported_at
        if age >= self.down_after_s:
            return HostState.DOWN
        if age >= self.suspect_after_s and operator_state is HostState.UP:
            return HostState.SUSPECT
        return operator_state
