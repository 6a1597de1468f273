"""A real scheduler under load: reports from every host and placements in bursts, at once.

    python -m bench.ingest --hosts 10000 --interval 30 --seconds 30

A real ``vmpack serve`` process (loopback, SQLite) is filled with ``--hosts`` hosts of 10
VMs each, then for ``--seconds``: every host reports every ``--interval`` seconds (paced
evenly, from a process of its own) while 16 clients place new VMs one after the other (16
in flight). Each placed VM shows up in its host's next report, as it would once created.
Printed: placement latency p50/p99 and placements a second, report latency p50/p99, the
scheduler's CPU and peak memory, and the over-booking check (each host's last report plus
the claims held, against its room). The baseline in the same run: the same load on a
scheduler started with ``--placement solver`` on the same database (CP-SAT for every
placement, the path every placement took before the in-memory inventory), and ``/health``
(HTTP and server cost without any work).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AGENT_TOKEN, OPERATOR_TOKEN = "bench-agent-token-0123456789", "bench-operator-token-0123456789"
HOST_CPUS, HOST_MEMORY_MIB = 64, 512 * 1024
FLAVOURS = [(1, 2048), (2, 4096), (2, 8192), (4, 8192), (4, 16384), (8, 32768)]


def domain(name: str, vcpus: int, memory_mib: int, k: int) -> dict[str, Any]:
    return {"name": name, "uuid": f"{k:032x}", "vcpus": vcpus, "memory_mib": memory_mib,
            "disk_mib": 20480, "state": "running", "persistent": True}  # fmt: skip


def host_report(i: int, domains: list[dict[str, Any]]) -> dict[str, Any]:
    return {"host": f"kvm-{i:05d}", "cpus": HOST_CPUS, "memory_mib": HOST_MEMORY_MIB,
            "disk_mib": 8 * 2**20, "domains": domains,
            "labels": {"rack": f"r{i // 40}"}}  # fmt: skip


def first_domains(hosts: int, seed: int = 1) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    out = []
    for i in range(hosts):
        picks = [rng.choice(FLAVOURS) for _ in range(10)]
        out.append([domain(f"vm-{i:05d}-{j}", c, m, i * 100 + j) for j, (c, m) in enumerate(picks)])
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Client:
    """One keep-alive HTTP connection; each call's latency in seconds."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.headers = port, {
            "Authorization": f"Bearer {token}", "Content-Type": "application/json"
        }  # fmt: skip
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, Any, float]:
        data = None if body is None else json.dumps(body)
        started = time.perf_counter()
        try:
            self.conn.request(method, path, data, self.headers)
            response = self.conn.getresponse()
            payload = response.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise
        return response.status, json.loads(payload or b"null"), time.perf_counter() - started


def wait_ready(port: int) -> None:
    for _ in range(600):
        try:
            if Client(port, OPERATOR_TOKEN).call("GET", "/health")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the scheduler did not start")


def in_threads(count: int, work: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=work, args=(k,)) for k in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def fill(port: int, domains: list[list[dict[str, Any]]]) -> float:
    """Every host reports once (16 at a time); returns the seconds it took."""
    started = time.perf_counter()

    def work(k: int) -> None:
        client = Client(port, AGENT_TOKEN)
        for i in range(k, len(domains), 16):
            status, body, _ = client.call("POST", "/v1/reports", host_report(i, domains[i]))
            assert status == 200, body

    in_threads(16, work)
    return time.perf_counter() - started


def report_load(port: int, hosts: int, interval: float, seconds: float, placed: Any,
                out: Any) -> None:  # fmt: skip
    """Every host reports every ``interval`` s for ``seconds``; in a process of its own.
    ``placed`` brings (host index, domain) of each VM placed, to show in the next report."""
    domains = first_domains(hosts)
    lock = threading.Lock()

    def take_placed() -> None:
        while True:
            item = placed.get()
            if item is None:
                return
            with lock:
                domains[item[0]].append(item[1])

    threading.Thread(target=take_placed, daemon=True).start()
    rate, workers = hosts / interval, 8
    latencies: list[float] = []
    start = time.perf_counter()
    total = int(rate * seconds)

    def work(k: int) -> None:
        client = Client(port, AGENT_TOKEN)
        for n in range(k, total, workers):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            i = n % hosts
            with lock:
                body = host_report(i, list(domains[i]))
            status, answer, took = client.call("POST", "/v1/reports", body)
            assert status == 200, answer
            latencies.append(took)

    in_threads(workers, work)
    out.put((latencies, time.perf_counter() - start))


@dataclass
class Run:
    placements: list[float] = field(default_factory=list)
    refused: int = 0
    seconds: float = 0.0
    reports: list[float] = field(default_factory=list)
    report_seconds: float = 0.0
    cpu: float = 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(
    port: int, pid: int, args: argparse.Namespace, prefix: str, limit: int,
    rate: float | None = None, clients: int = 16,
) -> Run:  # fmt: skip
    """Reports at the agents' pace and ``clients`` placement clients for ``args.seconds``:
    each places its next VM as soon as it has an answer, or, with ``rate``, at its turn in
    an even pace of ``rate`` placements a second (open loop)."""
    context = multiprocessing.get_context("spawn")
    placed, out = context.Queue(), context.Queue()
    reporter = context.Process(
        target=report_load, args=(port, args.hosts, args.interval, args.seconds, placed, out)
    )
    run, rng, lock = Run(), random.Random(2), threading.Lock()
    reporter.start()
    cpu0, started = cpu_seconds(pid), time.perf_counter()
    deadline = started + args.seconds

    def work(k: int) -> None:
        client, n = Client(port, OPERATOR_TOKEN), 0
        while time.perf_counter() < deadline and n < limit:
            if rate is not None:
                delay = started + (n * clients + k) / rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            vcpus, memory = rng.choice(FLAVOURS)
            name = f"{prefix}-{k}-{n}"
            n += 1
            status, body, took = client.call(
                "POST", "/v1/placements", {"name": name, "vcpus": vcpus, "memory": memory}
            )
            with lock:
                if status == 200:
                    run.placements.append(took)
                    index = int(body["host"].removeprefix("kvm-"))
                    placed.put((index, domain(name, vcpus, memory, hash(name) & (2**64 - 1))))
                else:
                    assert status == 409, body
                    run.refused += 1

    in_threads(clients, work)
    run.seconds = time.perf_counter() - started
    placed.put(None)
    run.reports, run.report_seconds = out.get()
    run.cpu = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - started)
    reporter.join()
    return run


def over_booked(port: int) -> tuple[int, int]:
    """Hosts whose last report plus the claims held exceed their room; and hosts checked."""
    client = Client(port, OPERATOR_TOKEN)
    hosts = client.call("GET", "/v1/hosts")[1]
    claims = client.call("GET", "/v1/placements")[1]
    vms = client.call("GET", "/v1/vms")[1]
    used: dict[str, list[int]] = {h["name"]: [0, 0] for h in hosts}
    for vm in vms:  # each VM once, on the host that reports it (claims are listed too)
        if vm["host"] in used:
            used[vm["host"]][0] += vm["demand"].get("vcpus", 0)
            used[vm["host"]][1] += vm["demand"].get("memory_mib", 0)
    reported = {v["name"] for v in vms}
    for claim in claims:
        if claim["vm"] not in reported:
            used[claim["host"]][0] += claim["demand"].get("vcpus", 0)
            used[claim["host"]][1] += claim["demand"].get("memory_mib", 0)
    room = {h["name"]: (h["capacity"]["vcpus"], h["capacity"]["memory_mib"]) for h in hosts}
    over = sum(1 for h, (cpu, mem) in used.items() if cpu > room[h][0] or mem > room[h][1])
    return over, len(used)


def serve(tmp: str, port: int, path: str) -> subprocess.Popen[bytes]:
    agent, operator = Path(tmp, "agent"), Path(tmp, "operator")
    agent.write_text(AGENT_TOKEN)
    operator.write_text(OPERATOR_TOKEN)
    return subprocess.Popen(
        [sys.executable, "-m", "scheduler.cli.main", "serve", "--listen", f"127.0.0.1:{port}",
         "--db", str(Path(tmp, "bench.db")), "--agent-token-file", str(agent),
         "--operator-token-file", str(operator), "--suspect-after", "600",
         "--down-after", "1200", "--placement", path],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def show(title: str, run: Run) -> None:
    p = run.placements
    print(f"{title}: {len(p)} placed, {run.refused} refused in {run.seconds:.1f} s "
          f"({len(p) / run.seconds:.1f}/s); latency p50 "
          f"{1000 * statistics.median(p) if p else float('nan'):.1f} ms, "
          f"p99 {1000 * percentile(p, 0.99):.1f} ms")  # fmt: skip
    r = run.reports
    print(f"  reports: {len(r)} at {len(r) / run.report_seconds:.0f}/s, latency p50 "
          f"{1000 * statistics.median(r):.1f} ms, p99 {1000 * percentile(r, 0.99):.1f} ms; "
          f"scheduler CPU {100 * run.cpu:.0f} %")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000, help="hosts, ten VMs each")
    parser.add_argument(
        "--interval", type=float, default=30.0, help="seconds between two reports of one host"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each load phase")
    parser.add_argument("--baseline-placements", type=int, default=3,
                        help="per client, on the --placement solver scheduler")  # fmt: skip
    parser.add_argument("--rate", type=float, default=200.0, help="placements/s offered")
    parser.add_argument("--port", type=int, default=18700)
    args = parser.parse_args()
    print(f"{args.hosts} hosts x 10 VMs, each host reporting every {args.interval:g} s")
    with tempfile.TemporaryDirectory() as tmp:
        server = serve(tmp, args.port, "fast")
        try:
            wait_ready(args.port)
            took = fill(args.port, first_domains(args.hosts))
            print(f"filled in {took:.1f} s ({args.hosts / took:.0f} reports/s, 16 in flight)")
            idle = [Client(args.port, OPERATOR_TOKEN).call("GET", "/health")[2]
                    for _ in range(200)]  # fmt: skip
            one = load(args.port, server.pid, args, "one", 10**9, clients=1)
            show("fast path, one placement at a time", one)
            paced = load(args.port, server.pid, args, "paced", 10**9, rate=args.rate)
            show(f"fast path, {args.rate:g} placements/s offered, up to 16 in flight", paced)
            run = load(args.port, server.pid, args, "fast", 10**9)
            show("fast path, 16 in flight, each next one at once (saturation)", run)
            over, checked = over_booked(args.port)
            print(f"  over-booked hosts: {over} of {checked}; "
                  f"scheduler peak memory {peak_rss_mib(server.pid):.0f} MiB")  # fmt: skip
            print(f"  /health alone (no load): p50 {1000 * statistics.median(idle):.2f} ms")
        finally:
            server.terminate()
            server.wait(30)
        started = time.perf_counter()
        server = serve(tmp, args.port, "solver")
        try:
            wait_ready(args.port)
            print(f"baseline scheduler restarted on the same store in "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
            base_one = load(args.port, server.pid, args, "base-one", 10,
                            clients=1)  # fmt: skip
            show("baseline, one placement at a time", base_one)
            base = load(args.port, server.pid, args, "solver", args.baseline_placements)
            show("baseline, 16 in flight (saturation)", base)
        finally:
            server.terminate()
            server.wait(30)
        if one.placements and base_one.placements and base.placements:
            p50 = statistics.median(base_one.placements) / statistics.median(one.placements)
            rate = len(run.placements) / run.seconds / (len(base.placements) / base.seconds)
            print(f"fast path vs baseline: p50 {p50:.0f}x lower, saturation {rate:.0f}x higher")


if __name__ == "__main__":
    main()
