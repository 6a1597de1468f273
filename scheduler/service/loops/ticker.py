"""A background loop that calls ``tick`` every ``tick_s`` seconds until stopped; an exception
in one tick is logged and the loop goes on (one bad tick must not end failover handling or
automation)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("vmpack.service")


class Ticker:
    def __init__(self, name: str, tick: Callable[[], object]) -> None:
        self.name, self.tick = name, tick
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, tick_s: float) -> None:
        """Start (or start again after ``stop``)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(tick_s,), daemon=True, name=self.name
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self, tick_s: float) -> None:
        stop = self._stop  # this run's: a later start brings its own
        while not stop.wait(tick_s):
            try:
                self.tick()
            except Exception:
                log.exception("%s tick", self.name)
