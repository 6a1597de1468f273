"""Scenario files (YAML, format version 1) to and from the cluster snapshot.

Owns: the file shape (``schema``), cross-reference checks (``checks``), loading and writing
(``load``) and the bundled default scenario. Every error names the file, line and field.
May import: ``scheduler.model``, ``scheduler.units``, ``scheduler.rules``.
"""
