"""From a target placement to a safe plan, and its independent check.

Owns: ordering moves into waves (``waves``), the solver-free replay of a plan (``check``),
returning a host from maintenance (``maintenance``) and the hysteresis of automatic
consolidation (``autopilot``).
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``,
``scheduler.ha``, ``scheduler.solver.budget`` (how long the waves follow the HA reserve);
``maintenance`` and ``autopilot`` also ``scheduler.engine`` and
``scheduler.solver``.
"""
