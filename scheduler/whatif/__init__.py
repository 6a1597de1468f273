"""Capacity what-ifs: changes to a snapshot (``changes``), their answer by the production
engine (``capacity``) and sweeps of many cases on a process pool or Ray (``sweep``).
May import: everything below the command line (``engine``, ``solver``, ``ha``, ``model``).
"""
