"""Starting placements: always valid, so a time limit never leaves the pipeline
empty-handed. ``greedy`` builds fits from the current placement or from scratch,
``keep_set`` chooses the hosts to keep first, then packs into them.
May import: ``scheduler.model``, ``scheduler.placement``.
"""
