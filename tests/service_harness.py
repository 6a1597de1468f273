"""A real scheduler service on a loopback port, for tests: uvicorn in a thread, SQLite on
disk, tokens for both roles, and a clock the test can move."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scheduler.model import Limits, Policy
from scheduler.planning.autopilot import AutomationPolicy
from scheduler.scenario.policy import LivePolicy
from scheduler.service.auth import Tokens
from scheduler.service.backends import open_store
from scheduler.service.executor import ExecutionPolicy
from scheduler.service.liveness import Heartbeat
from scheduler.service.loops.autopilot import Autopilot
from scheduler.service.loops.failover import FailoverWatch, FencingPolicy
from scheduler.service.loops.power import PowerControl, PowerPolicy
from scheduler.service.runtime import Runtime, ServiceConfig
from scheduler.service.server import Listen, Server
from scheduler.service.store import Store

AGENT_TOKEN = "agent-token-0123456789"
OPERATOR_TOKEN = "operator-token-0123456789"
BOUND_TOKEN = "bound-agent-token-0123456789"  # may act for kvm-01 only


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class WallClock(Clock):
    """The real time: for schedulers that run against real guests or real leases."""

    def __call__(self) -> float:
        return time.time()


@dataclass
class Service:
    url: str
    clock: Clock
    store: Store
    failover: FailoverWatch  # tests with a clock they move call ``tick()`` themselves
    autopilot: Autopilot
    power: PowerControl
    runtime: Runtime

    def client(self, token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_service(
    db: Path | str,
    clock: Clock | None = None,
    port: int | None = None,
    execution: ExecutionPolicy | None = None,
    tls: tuple[Path, Path] | None = None,
    limits: Limits | None = None,
    policy: Policy | None = None,
    heartbeat: Heartbeat | None = None,
    fencing: FencingPolicy | None = None,
    failover_tick_s: float = 0.2,
    automation: AutomationPolicy | None = None,
    power: PowerPolicy | None = None,
    policy_file: LivePolicy | None = None,
    lease_s: float = 10.0,
) -> Iterator[Service]:
    clock = clock or Clock()
    store = open_store(str(db))
    config = ServiceConfig(
        Tokens((AGENT_TOKEN, BOUND_TOKEN), (OPERATOR_TOKEN,), {BOUND_TOKEN: "kvm-01"}),
        heartbeat or Heartbeat(30.0, 120.0),
        solver_workers=1,
        clock=clock,
        execution=execution or ExecutionPolicy(tick_s=0.2),
        limits=limits or Limits(),
        policy=policy or Policy(),
        fencing=fencing or FencingPolicy(),
        failover_tick_s=failover_tick_s,
        automation=automation or AutomationPolicy(),
        power=power or PowerPolicy(),
        power_tick_s=3600.0,  # tests switch hosts by calling tick() themselves
        policy_file=policy_file,
        policy_source="test.yaml",
        lease_s=lease_s,
    )
    port = port or free_port()
    config.advertise_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    runtime = Runtime(config, store)
    cert, key = tls if tls else (None, None)
    server = Server(runtime, Listen("127.0.0.1", port, cert, key))
    server.start()
    try:
        url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        yield Service(
            url, clock, store, runtime.failover, runtime.autopilot, runtime.power, runtime
        )
    finally:
        server.stop()
        store.close()


def run_vmpack(url: str, token: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``vmpack ARGS --scheduler URL --token-file TOKEN`` as an operator types it."""
    return subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", *args, "--scheduler", url,
         "--token-file", str(token)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
