"""The scheduler service: what runs between the agents and the operators.

- ``runtime``: the one object that wires the store, the cluster view, metrics, the executor
  and the background loops (``loops/``), and starts and stops them;
- ``server``: the API of a runtime on a port (``app`` puts the ``routes/`` together, one
  module a resource);
- ``store`` and ``records``: the durable record; ``inventory``: agent reports to a snapshot;
  ``liveness``: heartbeats; ``executor``: plans carried out move by move; ``auth``: tokens.
May import everything below it (engine, planning, ha, solver, model) and ``agents.report``.
"""
