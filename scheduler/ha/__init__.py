"""High availability: the HA reserve check (``reserve``), the reserve followed through a
plan (``watch``), failover restarts by priority (``failover``), host power advice that
keeps the reserve (``power``) and a consolidation target chosen with the reserve
(``target``).
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``;
``failover`` also ``scheduler.engine`` and ``scheduler.solver``; ``target`` also
``scheduler.solver``.
"""
