"""The ``vmpack`` command line: ``main`` parses and dispatches; ``live`` (serve, agent, lab),
``ops`` (commands against a running scheduler), ``whatif``, ``sweep`` and ``replay`` add
their subcommands. The top of the import graph: nothing imports it.
"""
