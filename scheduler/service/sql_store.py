"""The store's SQL, once for both backends: SQLite (embedded, one file) and PostgreSQL
(several schedulers on one database). A backend gives a connection per thread, its way to
begin a write, how to lock a row it is about to compare and set, and how to read an
order's kind from its JSON details; everything else is here. Placeholders are ``?``; the
PostgreSQL connection translates them.
"""

from __future__ import annotations

import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from agents.report import HostReport
from scheduler.model import HostState
from scheduler.planning.status import NEXT, PlanConflict, PlanStatus
from scheduler.service.migrations import migrate
from scheduler.service.records import Claim, Fencing, OrderRecord, PlanRecord, PolicyRecord
from scheduler.service.store import OPEN_ORDERS, ORDER_STATUSES, AlreadyExists, Lease


class Connection(Protocol):
    """What the store asks of a database connection (``sqlite3.Connection`` has it)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, rows: Any, /) -> Any: ...
    def close(self) -> None: ...


class SqlStore(ABC):
    """Each thread reads and writes through a connection of its own; writes take one lock
    in this process and a transaction in the database."""

    dialect: str  # "sqlite" or "postgresql": the schema's types and the migrations' DDL
    begin = "BEGIN"
    lock_row = ""  # appended to a SELECT of a row about to be compared and set
    order_kind = ""  # SQL for an order's kind, 'migrate' where the details name none

    def __init__(self) -> None:
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._connections_lock = threading.Lock()
        self._lock = threading.Lock()  # one writer at a time across this process's threads
        self._parsed: dict[str, tuple[str, HostReport]] = {}  # host -> (its JSON, parsed)
        with self.together():
            migrate(self._db, self.dialect)

    @abstractmethod
    def _connect(self) -> Connection:
        """A new connection, in autocommit mode: transactions are begun explicitly."""

    @property
    def _db(self) -> Connection:
        """This thread's connection, opened at its first use."""
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """All or nothing: a failure inside leaves the store as it was. Inside ``together``
        it is a savepoint of the open transaction: undone alone, kept with the rest."""
        if getattr(self._local, "open", False):
            self._db.execute("SAVEPOINT one")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK TO SAVEPOINT one")
                self._db.execute("RELEASE SAVEPOINT one")
                raise
            self._db.execute("RELEASE SAVEPOINT one")
            return
        with self.together():
            yield self._db

    @contextmanager
    def together(self) -> Iterator[None]:
        """One transaction for every write made inside it by this thread (one sync)."""
        with self._lock:
            self._db.execute(self.begin)
            self._local.open = True
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                self._local.open = False
            self._db.execute("COMMIT")

    def save_report(self, report: HostReport, at: float) -> None:
        """The report, and apart from it each domain definition it carries (agents send a
        definition only when it changed)."""
        slim = json.dumps(report.to_json(definitions=False))
        with self._transaction() as db:
            db.execute(
                "INSERT INTO hosts (name, report, reported_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET report = excluded.report, "
                "reported_at = excluded.reported_at "
                "WHERE excluded.reported_at >= hosts.reported_at",  # two may cross on the way
                (report.host, slim, at),
            )
            db.executemany(
                "INSERT INTO definitions (vm, host, xml, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(vm) DO UPDATE SET host = excluded.host, xml = excluded.xml, "
                "at = excluded.at",
                [(d.name, report.host, d.definition, at) for d in report.domains if d.definition],
            )

    def definition(self, vm: str) -> str | None:
        row = self._db.execute("SELECT xml FROM definitions WHERE vm = ?", (vm,)).fetchone()
        return None if row is None else str(row[0])

    def set_fencing(self, host: str, status: str, detail: str, at: float) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO fencing (host, status, detail, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(host) DO UPDATE SET status = excluded.status, "
                "detail = excluded.detail, at = excluded.at",
                (host, status, detail, at),
            )

    def clear_fencing(self, host: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM fencing WHERE host = ?", (host,))

    def fencing(self) -> dict[str, Fencing]:
        rows = self._db.execute("SELECT host, status, detail, at FROM fencing").fetchall()
        return {h: Fencing(h, status, detail, float(at)) for h, status, detail, at in rows}

    def reports(self) -> list[tuple[HostReport, float]]:
        rows = self._db.execute(
            "SELECT name, report, reported_at FROM hosts WHERE report IS NOT NULL ORDER BY name"
        ).fetchall()
        found = []
        for name, text, at in rows:
            cached = self._parsed.get(name)
            if cached is None or cached[0] != text:  # parse each report once, not at every read
                cached = (text, HostReport.from_json(json.loads(text)))
                self._parsed[name] = cached
            found.append((cached[1], float(at)))
        return found

    def set_host_state(self, host: str, state: HostState) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO hosts (name, state) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET state = excluded.state",
                (host, state.value),
            )

    def host_states(self) -> dict[str, HostState]:
        rows = self._db.execute("SELECT name, state FROM hosts").fetchall()
        return {name: HostState(state) for name, state in rows}

    def report_times(self) -> dict[str, float]:
        """When each host last reported: liveness without reading the reports."""
        rows = self._db.execute(
            "SELECT name, reported_at FROM hosts WHERE reported_at IS NOT NULL"
        ).fetchall()
        return {name: float(at) for name, at in rows}

    def add_plan(self, goal: str, document: dict[str, Any], at: float) -> int:
        with self._transaction() as db:
            plan_id = int(
                db.execute(
                    "INSERT INTO plans (created_at, goal, status, document) VALUES (?, ?, ?, ?) "
                    "RETURNING id",
                    (at, goal, "proposed", json.dumps(document)),
                ).fetchone()[0]
            )
            db.execute(
                "INSERT INTO plan_events (plan_id, at, event) VALUES (?, ?, ?)",
                (plan_id, at, "proposed"),
            )
        return plan_id

    def plan(self, plan_id: int) -> PlanRecord | None:
        row = self._db.execute(
            "SELECT id, created_at, goal, status, document FROM plans WHERE id = ?", (plan_id,)
        ).fetchone()
        return _plan(row) if row else None

    def plans(self) -> list[PlanRecord]:
        rows = self._db.execute(
            "SELECT id, created_at, goal, status, document FROM plans ORDER BY id"
        ).fetchall()
        return [_plan(r) for r in rows]

    def move_plan(
        self, plan_id: int, expected: Collection[PlanStatus], status: PlanStatus, at: float,
        event: str,
    ) -> None:  # fmt: skip
        """Compare and set: the plan takes ``status`` (and the event, kept in order) only if
        its status is one of ``expected`` and ``NEXT`` allows the step; otherwise nothing
        changes and ``PlanConflict`` says what it is. Of racing callers, exactly one wins."""
        with self._transaction() as db:
            row = db.execute(
                f"SELECT status FROM plans WHERE id = ?{self.lock_row}", (plan_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"plan {plan_id} does not exist")
            current = PlanStatus(row[0])
            if current not in expected or status not in NEXT[current]:
                raise PlanConflict(plan_id, current, status)
            db.execute("UPDATE plans SET status = ? WHERE id = ?", (status, plan_id))
            db.execute(
                "INSERT INTO plan_events (plan_id, at, event) VALUES (?, ?, ?)",
                (plan_id, at, event),
            )

    def add_plan_event(self, plan_id: int, at: float, event: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO plan_events (plan_id, at, event) VALUES (?, ?, ?)",
                (plan_id, at, event),
            )

    def plan_events(self, plan_id: int) -> list[tuple[float, str]]:
        rows = self._db.execute(
            "SELECT at, event FROM plan_events WHERE plan_id = ? ORDER BY id", (plan_id,)
        ).fetchall()
        return [(float(at), str(event)) for at, event in rows]

    def add_order(
        self, plan_id: int, vm: str, source: str, target: str, at: float, details: dict[str, Any]
    ) -> int:
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO orders (plan_id, vm, source, target, status, updated_at, details) "
                "VALUES (?, ?, ?, ?, 'pending', ?, ?) RETURNING id",
                (plan_id, vm, source, target, at, json.dumps(details)),
            ).fetchone()
            return int(row[0])

    def order(self, order_id: int) -> OrderRecord | None:
        select = f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"
        row = self._db.execute(select, (order_id,)).fetchone()
        return _order(row) if row else None

    def orders(self, plan_id: int | None = None, host: str | None = None) -> list[OrderRecord]:
        query, args = f"SELECT {ORDER_COLUMNS} FROM orders WHERE 1 = 1", list[object]()
        if plan_id is not None:
            query, args = query + " AND plan_id = ?", [*args, plan_id]
        if host is not None:  # the orders this host's agent carries out (``agent_host``)
            kind = self.order_kind
            query += f" AND ((source = ? AND {kind} != 'restart')"
            query += f" OR (target = ? AND {kind} = 'restart'))"
            args = [*args, host, host]
        return [_order(r) for r in self._db.execute(query + " ORDER BY id", args).fetchall()]

    def superseded(self, host: str) -> set[str]:
        """VMs restarted on another host after ``host`` failed, and not moved back to it by
        any later order: a copy ``host`` still holds of them is stale."""
        kind = self.order_kind
        rows = self._db.execute(
            f"SELECT vm, source, {kind} FROM orders WHERE status = 'succeeded' AND vm IN "
            f"(SELECT vm FROM orders WHERE source = ? AND status = 'succeeded' "
            f"AND {kind} = 'restart') ORDER BY id",
            (host,),
        ).fetchall()
        last = {vm: (source, order_kind) for vm, source, order_kind in rows}
        return {vm for vm, (source, order_kind) in last.items()
                if order_kind == "restart" and source == host}  # fmt: skip

    def update_order(self, order_id: int, status: str, at: float, **fields: Any) -> OrderRecord:
        """Move an order on; a finished order (succeeded, failed, cancelled) never changes."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"status: unknown order status '{status}'")
        allowed = {"error", "downtime_ms", "seconds", "progress_pct"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: not a field of an order")
        with self._transaction() as db:
            row = db.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?{self.lock_row}", (order_id,)
            ).fetchone()
            if row is None:
                raise KeyError(f"order {order_id} does not exist")
            if _order(row).status not in OPEN_ORDERS:
                raise ValueError(f"status: order {order_id} is already {_order(row).status}")
            sets = "".join(f", {k} = ?" for k in fields)  # names checked against ``allowed``
            db.execute(
                f"UPDATE orders SET status = ?, updated_at = ?{sets} WHERE id = ?",
                (status, at, *fields.values(), order_id),
            )
            updated = db.execute(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?", (order_id,)
            ).fetchone()
        return _order(updated)

    def add_claim(self, claim: Claim) -> None:
        """Hold room for a VM placed through the API until its host reports it running."""
        self.add_claims([claim])

    def add_claims(self, claims: Sequence[Claim]) -> None:
        """The claims of one request: all kept, or none."""
        if not claims:
            return
        with self._transaction() as db:
            db.execute("DELETE FROM claims WHERE expires_at <= ?", (claims[0].at,))
            taken = db.execute(
                f"SELECT vm FROM claims WHERE vm IN ({', '.join('?' * len(claims))})",
                [c.vm for c in claims],
            ).fetchall()
            if taken:
                raise AlreadyExists(f"vm: '{taken[0][0]}' already holds a claim")
            db.executemany(
                "INSERT INTO claims (vm, host, demand, at, expires_at, labels) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(c.vm, c.host, json.dumps(c.demand), c.at, c.expires_at, json.dumps(c.labels))
                 for c in claims],
            )  # fmt: skip

    def claims(self, now: float) -> list[Claim]:
        """The claims still held at ``now``; an expired claim holds nothing."""
        rows = self._db.execute(
            "SELECT vm, host, demand, at, expires_at, labels FROM claims WHERE expires_at > ? "
            "ORDER BY vm",
            (now,),
        ).fetchall()
        return [
            Claim(vm, host, json.loads(d), float(at), float(e), json.loads(labels))
            for vm, host, d, at, e, labels in rows
        ]

    def drop_claims(self, vms: Iterable[str]) -> int:
        names = list(vms)
        if not names:
            return 0
        with self._transaction() as db:
            marks = ", ".join("?" * len(names))
            return int(db.execute(f"DELETE FROM claims WHERE vm IN ({marks})", names).rowcount)

    def add_policy(self, document: Mapping[str, Any], at: float, by: str) -> int:
        """Keep a new version of the cluster policy; returns its number."""
        with self._transaction() as db:
            row = db.execute(
                "INSERT INTO policies (at, by, document) VALUES (?, ?, ?) RETURNING version",
                (at, by, json.dumps(document, sort_keys=True)),
            ).fetchone()
            return int(row[0])

    def policy(self) -> PolicyRecord | None:
        """The newest version of the cluster policy, if one was ever kept."""
        row = self._db.execute(
            "SELECT version, at, by, document FROM policies ORDER BY version DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return PolicyRecord(int(row[0]), float(row[1]), str(row[2]), json.loads(row[3]))

    def claim_lease(
        self, holder: str, url: str, held_epoch: int | None, now: float, lease_s: float
    ) -> Lease:
        """Renew the lease ``holder`` holds in ``held_epoch``, or take it if it has expired
        (a new epoch); the lease as it stands afterwards, whoever holds it."""
        with self._transaction() as db:
            row = db.execute(
                f"SELECT holder, url, epoch, expires_at FROM lease WHERE id = 1{self.lock_row}"
            ).fetchone()
            lease = Lease(str(row[0]), str(row[1]), int(row[2]), float(row[3]))
            if lease.holder == holder and lease.epoch == held_epoch:
                lease = Lease(holder, url, lease.epoch, now + lease_s)  # renewed
            elif lease.expires_at <= now:
                lease = Lease(holder, url, lease.epoch + 1, now + lease_s)  # taken over
            else:
                return lease
            db.execute(
                "UPDATE lease SET holder = ?, url = ?, epoch = ?, expires_at = ? WHERE id = 1",
                (lease.holder, lease.url, lease.epoch, lease.expires_at),
            )
            return lease

    def restamp_pending_orders(self, epoch: int) -> int:
        """A new leader adopts the orders its predecessor issued and no agent took yet: they
        carry its epoch now, so agents take them and refuse any a deposed leader adds."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT id, details FROM orders WHERE status = 'pending'{self.lock_row}"
            ).fetchall()
            db.executemany(
                "UPDATE orders SET details = ? WHERE id = ?",
                [(json.dumps({**json.loads(details), "epoch": epoch}), order_id)
                 for order_id, details in rows],
            )  # fmt: skip
            return len(rows)

    def release_lease(self, holder: str, epoch: int) -> None:
        """Give the lease up (a clean stop): a standby may take it at its next try."""
        with self._transaction() as db:
            db.execute(
                "UPDATE lease SET expires_at = 0 WHERE id = 1 AND holder = ? AND epoch = ?",
                (holder, epoch),
            )


ORDER_COLUMNS = (
    "id, plan_id, vm, source, target, status, error, downtime_ms, seconds, updated_at, details, "
    "progress_pct"
)


def _order(row: tuple[Any, ...]) -> OrderRecord:
    order_id, plan_id, vm, source, target, status, error, downtime, seconds, at, details, pct = row
    return OrderRecord(
        int(order_id), int(plan_id), vm, source, target, status, error,
        None if downtime is None else int(downtime), None if seconds is None else float(seconds),
        float(at), json.loads(details), None if pct is None else float(pct),
    )  # fmt: skip


def _plan(row: tuple[Any, ...]) -> PlanRecord:
    plan_id, created_at, goal, status, document = row
    return PlanRecord(int(plan_id), float(created_at), str(goal), str(status), json.loads(document))
