"""Report ingestion and placement latency of one scheduler on this machine.

    python -m bench.ingest --agents 1000 --interval 10 --seconds 60

A real ``vmpack serve`` process (loopback, SQLite) receives reports from simulated agents,
each with 10 domains, every ``interval`` seconds, paced evenly. Measured in the same run:
p50/p99 latency of reports, of ``/health`` at the same rate (the baseline: HTTP and server
cost without any work), the scheduler's CPU use, then p50/p99 of placing one new VM on the
resulting inventory through the API against placing it in-process with the greedy heuristic.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from agents.report import DomainReport, HostReport
from scheduler.model import VM
from scheduler.placement.packer import Packer, place_pending
from scheduler.service.inventory import snapshot

AGENT_TOKEN, OPERATOR_TOKEN = "bench-agent-token-0123456789", "bench-operator-token-0123456789"


def report(i: int, rng: random.Random) -> HostReport:
    domains = tuple(
        DomainReport(f"vm-{i:04d}-{j}", f"{i:08x}-{j:04x}", rng.choice([1, 2, 4]),
                     rng.choice([2048, 4096, 8192]), 40960, "running", True, rng.randrange(10**12))
        for j in range(10)
    )  # fmt: skip
    return HostReport(
        f"kvm-{i:04d}", 64, 524288, 4 * 2**20, domains, labels={"rack": f"r{i // 40}"}
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def paced(
    client: httpx.AsyncClient, calls: list[tuple[str, str, object]], rate: float
) -> list[float]:
    latencies: list[float] = []

    async def one(method: str, path: str, body: object) -> None:
        started = time.perf_counter()
        response = await client.request(method, path, json=body)
        response.raise_for_status()
        latencies.append(time.perf_counter() - started)

    tasks = []
    start = time.perf_counter()
    for k, (method, path, body) in enumerate(calls):
        delay = start + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(method, path, body)))
    await asyncio.gather(*tasks)
    return latencies


async def run(args: argparse.Namespace, url: str, pid: int) -> None:
    rng = random.Random(1)
    reports = [report(i, rng).to_json() for i in range(args.agents)]
    rate = args.agents / args.interval
    count = int(rate * args.seconds)
    agent = {"Authorization": f"Bearer {AGENT_TOKEN}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, headers=agent, timeout=60, limits=limits) as client:
        cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
        got = await paced(
            client, [("POST", "/v1/reports", reports[k % len(reports)]) for k in range(count)], rate
        )
        cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - wall0)
        health = await paced(client, [("GET", "/health", None)] * count, rate)
    print(
        f"reports: {len(got)} at {rate:.0f}/s "
        f"({args.agents} agents every {args.interval:g} s, 10 domains each)"
    )
    p50, p99 = 1000 * statistics.median(got), 1000 * percentile(got, 0.99)
    print(f"  report latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; scheduler CPU {100 * cpu:.0f} %")
    print(f"  baseline /health at the same rate: p50 {1000 * statistics.median(health):.1f} ms, "
          f"p99 {1000 * percentile(health, 0.99):.1f} ms")  # fmt: skip
    operator = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
    async with httpx.AsyncClient(base_url=url, headers=operator, timeout=120) as client:
        api: list[float] = []
        for k in range(args.placements):
            started = time.perf_counter()
            answer = await client.post(
                "/v1/placements", json={"name": f"new-{k}", "vcpus": 2, "memory": "4GiB"}
            )
            answer.raise_for_status()
            api.append(time.perf_counter() - started)
    cluster = snapshot([HostReport.from_json(r) for r in reports]).cluster
    local: list[float] = []
    for k in range(args.placements):
        started = time.perf_counter()
        asking = cluster.replace_vms(
            [*cluster.vms, VM(f"new-{k}", {"vcpus": 2, "memory_mib": 4096})]
        )
        place_pending(Packer(asking, asking.current_placement), [f"new-{k}"])
        local.append(time.perf_counter() - started)
    print(f"placement of one VM on {args.agents} hosts / {10 * args.agents} VMs: API p50 "
          f"{1000 * statistics.median(api):.0f} ms, p99 {1000 * percentile(api, 0.99):.0f} ms; "
          f"in-process greedy baseline p50 {1000 * statistics.median(local):.0f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--placements", type=int, default=20)
    parser.add_argument("--port", type=int, default=18700)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        agent_file, operator_file = Path(tmp, "agent"), Path(tmp, "operator")
        agent_file.write_text(AGENT_TOKEN)
        operator_file.write_text(OPERATOR_TOKEN)
        server = subprocess.Popen([
            sys.executable, "-m", "scheduler.cli.main", "serve",
            "--listen", f"127.0.0.1:{args.port}",
            "--db", str(Path(tmp, "bench.db")), "--agent-token-file", str(agent_file),
            "--operator-token-file", str(operator_file),
            "--suspect-after", "600", "--down-after", "1200",
        ])  # fmt: skip
        url = f"http://127.0.0.1:{args.port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(url + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            asyncio.run(run(args, url, server.pid))
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
