"""The CP-SAT model: variables and hard constraints (``encoding``), objectives per goal
(``objective``) and the one place that runs CP-SAT and types its answer (``solve``).
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``.
"""
