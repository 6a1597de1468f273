"""High availability: the HA reserve check (``reserve``), the reserve followed through a
plan (``watch``), failover restarts by priority (``failover``) and host power advice that
keeps the reserve (``power``).
May import: ``scheduler.model``, ``scheduler.rules``, ``scheduler.placement``;
``failover`` also ``scheduler.engine`` and ``scheduler.solver``.
"""
