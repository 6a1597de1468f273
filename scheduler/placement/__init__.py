"""A placement and what can be said of it without a solver.

Owns: the mutable placement state that heuristics and the wave planner share (``state``),
the vectorised packer of the greedy starts and the HA check (``packer``), indicators and
per-goal scores (``evaluate``) and the diagnosis of VMs that find no host (``explain``).
May import: ``scheduler.model``, ``scheduler.units``, ``scheduler.rules``.
"""
