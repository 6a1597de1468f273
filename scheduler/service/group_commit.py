"""Writes that many requests hand in at once, made durable together.

A commit that reaches the disk costs a sync (a third of a millisecond here), and the store
takes one writer at a time: with every report and every placement committing on its own,
10,000 hosts reporting every 30 s and placements in bursts queue behind the disk. Here one
thread writes everything that queued while the previous batch was being written in one
transaction: one sync for the lot. Each write keeps its own outcome (a savepoint each), and
each caller learns it only once the batch is on disk, so an answer never promises what a
crash could take back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import Any, TypeVar

log = logging.getLogger("vmpack.store")

T = TypeVar("T")
MAX_BATCH = 512  # writes in one transaction, so that no batch holds the store for long


class GroupCommit:
    def __init__(self, together: Callable[[], AbstractContextManager[object]]) -> None:
        """``together()`` opens one transaction; the writes join it (as savepoints)."""
        self._together = together
        self._queue: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._ready = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], T]) -> Future[T]:
        """``write`` runs in the next batch; the future holds its result once on disk."""
        done: Future[T] = Future()
        with self._ready:
            if self._closing:
                raise RuntimeError("the store writer has stopped")
            self._queue.append((write, done))
            self._ready.notify()
        return done

    def run(self, write: Callable[[], T]) -> T:
        return self.submit(write).result()

    def close(self) -> None:
        """Write what is queued, then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closing:
                    self._ready.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self._write(batch)

    def _write(self, batch: list[tuple[Callable[[], Any], Future[Any]]]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            with self._together():
                for write, _ in batch:
                    try:
                        outcomes.append((True, write()))
                    except Exception as exc:  # this write only: its savepoint rolled back
                        outcomes.append((False, exc))
        except Exception as exc:  # the commit itself failed: nothing of the batch is kept
            log.error("store write of %d changes failed: %s", len(batch), exc)
            for _, done in batch:
                done.set_exception(exc)
            return
        for (ok, value), (_, done) in zip(outcomes, batch, strict=True):
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)
