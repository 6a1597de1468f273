"""Writes made durable together: a batch is one transaction, each write keeps its own
outcome, and a caller hears of its write only once it is on disk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agents.report import HostReport
from scheduler.service.backends import open_store
from scheduler.service.group_commit import GroupCommit
from scheduler.service.records import Claim
from scheduler.service.sqlite_store import SqliteStore
from scheduler.service.store import AlreadyExists


def test_racing_writes_all_land_and_a_bad_one_fails_alone(store_url: str) -> None:
    store = open_store(store_url)
    writes = GroupCommit(store.together)
    futures = []
    gate = threading.Barrier(8)

    def burst(k: int) -> None:
        gate.wait()
        for n in range(50):
            report = HostReport(f"h{k}-{n}", 8, 1024, 0)
            futures.append(writes.submit(lambda r=report: store.save_report(r, 1.0)))

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    claim = Claim("vm", "h0-0", {"vcpus": 1}, 1.0, 99.0)
    first = writes.submit(lambda: store.add_claim(claim))
    twice = writes.submit(lambda: store.add_claim(claim))  # the same VM again: refused
    for t in threads:
        t.join()
    for future in futures:
        assert future.result() is None
    assert first.result() is None
    with pytest.raises(AlreadyExists, match="'vm' already holds a claim"):
        twice.result()
    writes.close()
    again = open_store(store_url)  # what a restarted scheduler finds
    assert len(again.reports()) == 400 and [c.vm for c in again.claims(2.0)] == ["vm"]


def test_a_failed_commit_fails_every_write_of_its_batch(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "vmpack.db")
    gate = threading.Event()

    class Broken:
        def __enter__(self) -> None:
            gate.wait()

        def __exit__(self, *exc: object) -> None:
            raise OSError("disk full")

    writes = GroupCommit(Broken)
    futures = [writes.submit(lambda: 1) for _ in range(3)]
    gate.set()
    for future in futures:
        with pytest.raises(OSError, match="disk full"):
            future.result()
    writes.close()
    store.close()
