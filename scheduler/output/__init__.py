"""What people read: the terminal report (``terminal``), one-file HTML reports (``html``,
``capacity``) and plots (``pictures``).
May import: the results it shows (``engine``, ``ha``, ``whatif``), never the other way round.
"""
