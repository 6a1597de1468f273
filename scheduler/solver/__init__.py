"""From a snapshot and a goal to a target placement.

``pipeline`` runs the stages in one visible sequence: ``starts`` (greedy and keep-set
starts), ``dive`` (packing from scratch by column generation and an LP dive), ``closing``
(closing hosts by tabu search and exact repacks), ``cpsat`` (the whole CP-SAT model) and
``lns`` (large-neighbourhood search of CP-SAT sub-models), each on a share of one
``budget`` (the only clock); ``bounds`` gives the lower bounds
that say when to stop.
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``.
"""
