"""Which of several schedulers on one database leads: a lease in the store.

One row holds the lease: who holds it, the URL others send writes to, its epoch and when it
expires. Every ``lease_s / 3`` each scheduler tries to take or renew it (a compare-and-set
in one transaction): the holder renews; anyone takes an expired lease, and taking it raises
the epoch. The epoch goes with every order, and agents refuse an order from an epoch older
than one they have seen, so a deposed leader cannot move a VM.

A leader trusts its lease for two thirds of ``lease_s`` from the start of its last renewal
that succeeded, on its own monotonic clock; a standby takes over only once the lease has
expired by the store's record. So the old leader has stopped issuing orders before anyone
else can start, as long as the clocks of two schedulers differ by less than a third of the
lease. A scheduler that cannot reach the store stops leading at once: it cannot know that
it still leads.
"""

from __future__ import annotations

import enum
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from scheduler.service.loops.ticker import Ticker
from scheduler.service.store import Lease, Store

log = logging.getLogger("vmpack.leadership")

TRUSTED_SHARE = 2 / 3  # of the lease, from the start of a renewal, that a leader acts on


def default_instance() -> str:
    """A name no other scheduler process has: host, process, and a random part."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Role(enum.StrEnum):
    LEADER = "leader"
    STANDBY = "standby"  # another scheduler leads, or nobody does and this one will try
    LOST = "lost"  # the store cannot be reached: nobody is known to lead


@dataclass(frozen=True)
class LeaderView:
    role: Role
    epoch: int  # of the lease as last read
    leader_url: str  # where writes go; "" when no lease is valid
    reason: str  # why this scheduler does not lead, in a line


class Leadership:
    def __init__(
        self,
        store: Store,
        holder: str,
        url: str,
        lease_s: float,
        clock: Callable[[], float],
        on_gain: Callable[[int], None],
        on_loss: Callable[[str], None],
        on_standby_tick: Callable[[], None] = lambda: None,
    ) -> None:
        self.store, self.holder, self.url, self.lease_s = store, holder, url, lease_s
        self.clock, self.on_gain, self.on_loss = clock, on_gain, on_loss
        self.on_standby_tick = on_standby_tick
        self._lock = threading.Lock()  # one tick at a time; the view changes under it
        self._trusted_until = 0.0  # monotonic
        self._leading_epoch = 0  # the epoch this scheduler leads in, 0 if it does not
        self._view = LeaderView(Role.STANDBY, 0, "", "no lease read yet")
        self._ticker = Ticker("leadership", self.tick)

    # -- what the service asks -----------------------------------------------------------

    def leads(self) -> bool:
        """True while this scheduler holds a lease it may act on: checked before every
        order, so that a scheduler whose renewal is late stops at once."""
        return self._leading_epoch > 0 and time.monotonic() < self._trusted_until

    @property
    def epoch(self) -> int:
        return self._leading_epoch

    def view(self) -> LeaderView:
        view = self._view
        if view.role is Role.LEADER and not self.leads():
            return LeaderView(Role.STANDBY, view.epoch, "", "the lease was not renewed in time")
        return view

    # -- life ----------------------------------------------------------------------------

    def start(self) -> None:
        """Try once now (a lone scheduler leads from its first moment), then keep trying."""
        self.tick()
        self._ticker.start(self.lease_s / 3)

    def stop(self) -> None:
        """Stop trying; a leader gives the lease up so that a standby takes over at once."""
        self._ticker.stop()
        with self._lock:
            epoch, self._leading_epoch = self._leading_epoch, 0
            if epoch:
                self.on_loss("stopped")
                try:
                    self.store.release_lease(self.holder, epoch)
                except Exception as exc:  # the lease then simply expires
                    log.warning("could not give the lease up: %s", exc)

    def tick(self) -> None:
        with self._lock:
            started = time.monotonic()
            try:
                lease = self.store.claim_lease(
                    self.holder, self.url, self._leading_epoch or None, self.clock(), self.lease_s
                )
            except Exception as exc:
                self._lost(f"store unreachable: {' '.join(str(exc).split())[:300]}")
                return
            if lease.holder == self.holder:
                self._led(lease, started)
            else:
                self._follows(lease)
        if self._view.role is not Role.LEADER:
            self.on_standby_tick()

    def _led(self, lease: Lease, started: float) -> None:
        self._trusted_until = started + TRUSTED_SHARE * self.lease_s
        self._view = LeaderView(Role.LEADER, lease.epoch, self.url, "")
        if self._leading_epoch != lease.epoch:
            self._leading_epoch = lease.epoch
            log.warning("leading in epoch %d", lease.epoch)
            self.on_gain(lease.epoch)

    def _follows(self, lease: Lease) -> None:
        self._give_up(f"{lease.holder} leads (epoch {lease.epoch})")
        valid = lease.holder != "" and lease.expires_at > self.clock()
        reason = f"{lease.url} leads in epoch {lease.epoch}" if valid else "nobody leads now"
        self._view = LeaderView(Role.STANDBY, lease.epoch, lease.url if valid else "", reason)

    def _lost(self, reason: str) -> None:
        self._give_up(reason)
        self._view = LeaderView(Role.LOST, self._view.epoch, "", reason)
        log.error("not leading: %s", reason)

    def _give_up(self, reason: str) -> None:
        if self._leading_epoch:
            self._leading_epoch = 0
            log.warning("no longer leading: %s", reason)
            self.on_loss(reason)
