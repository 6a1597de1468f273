"""The service's background loops, each a ``Ticker``: the autopilot, failure handling
(fencing and restarts), host power and the reserve cache the metrics read.
May import: ``scheduler.service`` store and records, and the pure decisions they run.
"""
