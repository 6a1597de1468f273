"""``vmpack serve --db postgresql://...`` on a real PostgreSQL server: reports, claims and
plans survive a kill -9 of the scheduler, and a database that cannot be reached stops the
start with one line naming it (exit 2)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.lab_cluster import wait_for
from tests.postgres_server import PostgresServer
from tests.service_harness import AGENT_TOKEN, OPERATOR_TOKEN, free_port

REPORT = {"host": "kvm-01", "cpus": 16, "memory_mib": 65536, "disk_mib": 0, "domains": [
    {"name": "web1", "uuid": "u-1", "vcpus": 2, "memory_mib": 4096, "disk_mib": 0,
     "state": "running", "persistent": True}]}  # fmt: skip


def serve_command(tmp_path: Path, db: str, port: int) -> list[str]:
    agent, operator = tmp_path / "agent.token", tmp_path / "operator.token"
    agent.write_text(AGENT_TOKEN)
    operator.write_text(OPERATOR_TOKEN)
    return [sys.executable, "-m", "scheduler.cli.main", "serve", "--listen", f"127.0.0.1:{port}",
            "--db", db, "--agent-token-file", str(agent), "--operator-token-file", str(operator)]  # fmt: skip


@contextmanager
def serving(command: list[str], url: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _healthy(url), 60, "the scheduler to answer")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)  # no clean shutdown: the store must not care
        process.wait(30)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_on_postgresql_survives_kill_9(tmp_path: Path, postgres: PostgresServer) -> None:
    db, port = postgres.new_database(), free_port()
    url = f"http://127.0.0.1:{port}"
    command = serve_command(tmp_path, db, port)
    agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    ops = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    with serving(command, url):
        assert httpx.post(f"{url}/v1/reports", json=REPORT, headers=agent).status_code == 200
        ask = {"name": "db1", "vcpus": 2, "memory": "8GiB"}
        assert httpx.post(f"{url}/v1/placements", json=ask, headers=ops).json()["host"] == "kvm-01"
        plan = httpx.post(f"{url}/v1/plans", json={"goal": "balance", "time_limit_s": 2},
                          headers=ops, timeout=60).json()  # fmt: skip
    with serving(command, url):  # killed, started again on the same database
        assert [h["name"] for h in httpx.get(f"{url}/v1/hosts", headers=ops).json()] == ["kvm-01"]
        assert [c["vm"] for c in httpx.get(f"{url}/v1/placements", headers=ops).json()] == ["db1"]
        kept = httpx.get(f"{url}/v1/plans/{plan['id']}", headers=ops).json()
        assert kept["status"] == "proposed"


def test_serve_refuses_a_database_it_cannot_reach(tmp_path: Path) -> None:
    port = free_port()
    db = "postgresql://vmpack:s3cret@127.0.0.1:9/vmpack"
    ran = subprocess.run(serve_command(tmp_path, db, port), capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert ran.returncode == 2
    (line,) = ran.stderr.strip().splitlines()
    assert line.startswith("vmpack: error: --db: PostgreSQL at postgresql://vmpack:***@")
    assert "s3cret" not in line


def test_a_standby_leads_within_the_lease_after_kill_9_of_the_leader(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    db = postgres.new_database()
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    commands = [[*serve_command(tmp_path, db, p), "--lease", "2"] for p in ports]
    with serving(commands[0], urls[0]) as leader, serving(commands[1], urls[1]):
        assert httpx.get(f"{urls[0]}/health").json()["role"] == "leader"
        assert httpx.get(f"{urls[1]}/health").json()["leader"] == urls[0]
        leader.send_signal(signal.SIGKILL)  # no clean stop: the lease has to run out
        killed = time.monotonic()
        wait_for(lambda: httpx.get(f"{urls[1]}/health").json()["role"] == "leader", 15,
                 "the standby to lead")  # fmt: skip
        took = time.monotonic() - killed
        assert took < 3 * 2, took  # the lease, a renewal period of the standby, and slack
        assert httpx.get(f"{urls[1]}/health").json()["epoch"] == 2
        agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
        assert httpx.post(f"{urls[1]}/v1/reports", json=REPORT, headers=agent).status_code == 200
        # The old leader started again: it stands by, and exactly one scheduler leads.
        with serving(commands[0], urls[0]):
            roles = sorted(httpx.get(f"{u}/health").json()["role"] for u in urls)
            assert roles == ["leader", "standby"]
