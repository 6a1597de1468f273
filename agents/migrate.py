"""The only module that asks libvirt to migrate.

A migration is live and peer-to-peer (the source daemon dials the destination daemon), the
domain is made persistent on the destination and undefined on the source, with a bandwidth
limit and a timeout from policy. While it runs, the libvirt job is polled for progress; on
timeout or cancel the job is aborted. Whatever happens, the result says where the VM runs
afterwards, read from libvirt, not assumed: a failed migration must leave it on its source.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import libvirt

# Errors are raised and reported by us; libvirt's default handler would also print them.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


@dataclass(frozen=True)
class MigrationOrder:
    order_id: int
    vm: str
    target_uri: str  # the destination's libvirt URI, as the source daemon reaches it
    bandwidth_mib_s: int = 0  # 0: unlimited
    timeout_s: float = 300.0
    migration_address: str | None = None  # only where the destination cannot advertise it


@dataclass(frozen=True)
class Progress:
    order_id: int
    elapsed_ms: int
    data_processed_bytes: int
    data_remaining_bytes: int


@dataclass(frozen=True)
class MigrationResult:
    order_id: int
    vm: str
    ok: bool
    error: str
    seconds: float
    downtime_ms: int | None
    running_on_source: bool  # checked after the attempt


def migrate(
    conn: libvirt.virConnect,
    order: MigrationOrder,
    on_progress: Callable[[Progress], None] = lambda _p: None,
    cancel: threading.Event | None = None,
) -> MigrationResult:
    started = time.monotonic()
    try:
        dom = conn.lookupByName(order.vm)
    except libvirt.libvirtError as exc:
        return MigrationResult(
            order.order_id, order.vm, False, f"libvirt: {exc.get_error_message()}", 0.0, None, False
        )
    params: dict[str, object] = {}
    if order.bandwidth_mib_s:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = order.bandwidth_mib_s
    if order.migration_address:
        params[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{order.migration_address}"
        params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = order.migration_address
    errors: list[str] = []

    def run() -> None:
        try:
            dom.migrateToURI3(order.target_uri, params, FLAGS)
        except libvirt.libvirtError as exc:
            errors.append(f"libvirt: {exc.get_error_message()}")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    aborted = ""
    while worker.is_alive():
        worker.join(0.5)
        if not worker.is_alive():
            break
        if cancel is not None and cancel.is_set():
            aborted = "cancelled"
        elif time.monotonic() - started > order.timeout_s:
            aborted = f"timed out after {order.timeout_s:g} s"
        if aborted:
            _abort(dom)
            worker.join()
            break
        _report_progress(dom, order, on_progress)
    seconds = time.monotonic() - started
    downtime = _downtime_ms(dom, order) if not errors and not aborted else None
    on_source = _running_on(conn, order.vm)
    error = aborted + ("; " if aborted and errors else "") + "; ".join(errors)
    ok = not error and not on_source
    return MigrationResult(order.order_id, order.vm, ok, error, seconds, downtime, on_source)


def _report_progress(
    dom: libvirt.virDomain, order: MigrationOrder, on_progress: Callable[[Progress], None]
) -> None:
    try:
        stats = dom.jobStats()
    except libvirt.libvirtError:
        return  # the job ended between two polls
    on_progress(
        Progress(
            order.order_id,
            int(stats.get("time_elapsed", 0)),
            int(stats.get("data_processed", 0)),
            int(stats.get("data_remaining", 0)),
        )
    )


def _abort(dom: libvirt.virDomain) -> None:
    # It may have finished or failed on its own meanwhile; the check afterwards tells.
    with contextlib.suppress(libvirt.libvirtError):
        dom.abortJob()


def _downtime_ms(dom: libvirt.virDomain, order: MigrationOrder) -> int | None:
    """The completed job's downtime, from the source, or else from the destination (the
    source domain is undefined once the migration succeeded)."""
    with contextlib.suppress(libvirt.libvirtError):
        return _completed_downtime(dom)
    with contextlib.suppress(libvirt.libvirtError):
        target = libvirt.open(order.target_uri)
        try:
            return _completed_downtime(target.lookupByName(order.vm))
        finally:
            target.close()
    return None


def _completed_downtime(dom: libvirt.virDomain) -> int | None:
    stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return int(stats["downtime"]) if "downtime" in stats else None


def _running_on(conn: libvirt.virConnect, vm: str) -> bool:
    try:
        return bool(conn.lookupByName(vm).isActive())
    except libvirt.libvirtError:
        return False
