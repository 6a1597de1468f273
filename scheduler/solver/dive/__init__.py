"""Packing from scratch: column generation (``pricing``) and an LP dive (``lp_dive``).
May import: ``scheduler.model``, ``scheduler.solver.closing`` (its compiled helpers).
"""
