"""How the solver pipeline runs: its CP-SAT settings, the size up to which one model of the
whole cluster is solved, the size of a neighbourhood, and where progress is reported."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.solver.cpsat.solve import SolverSettings

Progress = Callable[[str, float], None]  # (what is happening, fraction of the time used)

# The pipeline's stages that may be left out; benchmarks measure each one's worth that way.
STAGES = frozenset({"keep-set", "dive", "closing", "model", "sizes", "contents", "lns"})


@dataclass(frozen=True)
class SearchOptions:
    solver: SolverSettings = field(default_factory=SolverSettings)
    full_model_max_pairs: int = 30_000
    neighbourhood_vms: int = 160
    progress: Progress | None = None
    stages: frozenset[str] = STAGES
