"""Closing hosts: a tabu search with ejections that empties hosts one at a time.

``search`` drives it over arrays, ``steps`` holds its compiled inner loop, ``knapsack`` the
small exact packings a step uses, ``repack`` the exact CP-SAT repack of a stalled pool, and
``on_cluster`` applies the search to a snapshot and checks the result.
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``,
``scheduler.solver.bounds``.
"""
