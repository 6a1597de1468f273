"""The one clock of a decision: what it may spend, in wall seconds or in deterministic work.

The caller creates the budget (the CLI when the process starts, the service for each
request, a sweep for each run) and hands it down. Each stage of the pipeline takes a share
of what is left and never reads a clock of its own, so a time limit covers everything the
command does, and a deterministic budget, which counts work (CP-SAT's deterministic time and
the steps of the array searches) instead of seconds, repeats exactly under any load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]

WORK_PER_STEP = 1 / 2_000  # a step of the host-closing search, about as long as that here


@dataclass
class Budget:
    limit: float  # seconds, or work units when deterministic
    deterministic: bool = False
    clock: Clock = time.monotonic
    started: float | None = None  # on ``clock``; None: now
    parent: Budget | None = None
    _work: float = 0.0

    def __post_init__(self) -> None:
        if self.started is None:
            self.started = self.clock()

    @classmethod
    def since_process_start(cls, seconds: float) -> Budget:
        """A wall budget that counts the interpreter's own start-up: the promise a command
        makes is about the whole command, imports included."""
        return cls(seconds, started=time.monotonic() - process_age())

    def spent(self) -> float:
        if self.deterministic:
            return self._work
        assert self.started is not None
        return self.clock() - self.started

    def left(self) -> float:
        return max(0.0, self.limit - self.spent())

    @property
    def exhausted(self) -> bool:
        return self.left() <= 0.0

    def charge(self, work: float) -> None:
        """Work done, counted where the clock cannot be (deterministic budgets)."""
        self._work += work
        if self.parent is not None:
            self.parent.charge(work)

    def share(self, amount: float) -> Budget:
        """A part of what is left, at most ``amount``; its work is charged here too."""
        return Budget(min(amount, self.left()), self.deterministic, self.clock, parent=self)

    def fraction(self, part: float) -> Budget:
        return self.share(part * self.left())

    def watches_clock(self) -> bool:
        """Stages that can only stop on a clock (the LP dive) run only under wall budgets."""
        return not self.deterministic


def process_age() -> float:
    """Seconds since this process started, from the kernel's record of it (0 if unknown)."""
    try:
        with open(f"/proc/{os.getpid()}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as uptime:
            now = float(uptime.read().split()[0])
    except (OSError, IndexError, ValueError):
        return 0.0
    started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, in ticks
    return max(0.0, now - started)
