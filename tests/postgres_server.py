"""A real PostgreSQL server for tests: Debian's ``postgresql`` binaries, a cluster made with
``initdb`` in a temporary directory, listening on a loopback port, stopped and removed
afterwards; one fresh database per test. PostgreSQL refuses to run as root, so under root
the server runs as the ``postgres`` user the package creates."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.service_harness import free_port

SERVER_USER = "postgres"


def binaries() -> Path:
    """The newest installed server's bin directory (``/usr/lib/postgresql/15/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run ./bootstrap.sh")
    return found[-1].parent


@dataclass
class PostgresServer:
    port: int
    stop_command: list[str]
    _names: Iterator[int] = field(default_factory=itertools.count)

    def stop(self) -> None:
        """Down at once (as if its host died): connections break, nothing is flushed."""
        subprocess.run(self.stop_command, capture_output=True, timeout=60)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"vmpack_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="vmpack-pg-"))  # /tmp: reachable by the server user
    if os.geteuid() == 0:
        shutil.chown(base, SERVER_USER)
    data, port, bin_dir = base / "data", free_port(), binaries()
    initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", SERVER_USER, "-A", "trust",
              "-E", "UTF8", "--no-sync"]  # fmt: skip
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True, timeout=120)
    options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    start = [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"),
             "-w", "-t", "60", "start"]  # fmt: skip
    stop = [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
    try:
        subprocess.run(_as_server_user(start), check=True, capture_output=True, timeout=90)
        yield PostgresServer(port, _as_server_user(stop))
    finally:
        subprocess.run(_as_server_user(stop), capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)
