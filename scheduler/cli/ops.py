"""Operators' commands against a running scheduler: hosts, VMs, maintenance and plans.

vmpack hosts [list] | confirm-off HOST | forget-identity HOST;  vmpack vms
vmpack maintenance enter|exit HOST
vmpack plans [list] | create --goal G [--hosts ...] | show ID | approve ID | apply ID
             | cancel ID | watch ID
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from agents.agent import trust
from agents.scheduler_client import SchedulerClient, scheduler_urls
from scheduler.planning.status import FINISHED


class OpsError(Exception):
    """A call the scheduler refused or could not answer; ``status`` is the exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hosts = sub.add_parser(
        "hosts", help="list hosts; confirm that a down host is off; accept a replaced machine"
    )
    hosts.add_argument("action", nargs="?", default="list", choices=["list", *HOST_ACTIONS])
    hosts.add_argument("host", nargs="?")
    connection_options(hosts)
    hosts.set_defaults(run=run_hosts)
    vms = sub.add_parser("vms", help="list the VMs a running scheduler knows")
    connection_options(vms)
    vms.set_defaults(run=run_vms)
    maintenance = sub.add_parser(
        "maintenance", help="empty a host with live migrations and keep it empty; or return it"
    )
    maintenance.add_argument("action", choices=["enter", "exit"])
    maintenance.add_argument("host")
    maintenance.add_argument("--time-limit", type=float, default=30.0)
    maintenance.add_argument("--no-wait", action="store_true", help="do not follow the plan")
    maintenance.add_argument("--move-back", action="store_true",
                             help="exit: migrate back what evacuation moved off")  # fmt: skip
    maintenance.add_argument("--ignore-ha", action="store_true",
                             help="enter even if the HA reserve would break")  # fmt: skip
    connection_options(maintenance)
    maintenance.set_defaults(run=run_maintenance)
    plans = sub.add_parser("plans", help="create, approve, apply, cancel and watch plans")
    actions = ["list", "create", "show", "approve", "apply", "cancel", "watch"]
    plans.add_argument("action", nargs="?", default="list", choices=actions)
    plans.add_argument("plan_id", nargs="?", type=int)
    goals = ["place", "consolidate", "balance", "evacuate", "repair"]
    plans.add_argument("--goal", choices=goals)
    plans.add_argument("--hosts", default="", help="hosts to empty (goal evacuate)")
    plans.add_argument("--time-limit", type=float, default=30.0)
    connection_options(plans)
    plans.set_defaults(run=run_plans)


def connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scheduler", default="http://127.0.0.1:8700", metavar="URL[,URL...]",
                        help="the schedulers; writes go to whichever leads")  # fmt: skip
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--ca-file", help="CA bundle to verify the scheduler's certificate")


def client_of(args: argparse.Namespace) -> SchedulerClient:
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        raise OpsError(f"--token-file: {args.token_file}: {exc.strerror}", 2) from None
    try:
        scheduler_urls(args.scheduler)
    except ValueError as exc:
        raise OpsError(str(exc), 2) from None
    return SchedulerClient(args.scheduler, token, trust(args.ca_file), timeout=600.0)


def call(client: SchedulerClient, method: str, path: str, **kwargs: Any) -> Any:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise OpsError(f"scheduler {client.base_url}: {exc}", 1) from None
    if response.status_code >= 400:
        try:
            error = response.json().get("error", response.text)
        except ValueError:
            error = response.text
        raise OpsError(f"{response.status_code}: {error}", 2 if response.status_code < 500 else 1)
    return response.json()


# action -> (method, route, what a missing host name means, what is printed when done)
HOST_ACTIONS = {
    "confirm-off": ("POST", "/v1/hosts/{host}/fenced", "name the host that is off",
                    "confirmed off; its VMs restart on the other hosts"),
    "forget-identity": ("DELETE", "/v1/hosts/{host}/identity",
                        "name the host whose machine was replaced",
                        "its next report, from whichever libvirt host, is taken"),
}  # fmt: skip


def run_hosts(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action in HOST_ACTIONS:
        method, path, missing, done = HOST_ACTIONS[args.action]
        if not args.host:
            raise OpsError(f"host: {missing}", 2)
        call(client, method, path.format(host=args.host))
        print(f"{args.host}: {done}")
        return 0
    hosts = call(client, "GET", "/v1/hosts")
    table = Table("host", "state", "VMs", "vCPUs", "memory GiB", "report age s", "fencing")
    for h in hosts:
        cap = h["capacity"]
        memory_gib = f"{cap.get('memory_mib', 0) / 1024:.0f}"
        age = f"{h['report_age_s']:.0f}"
        fencing = h.get("fencing") or {}
        fenced = f"{fencing['status']}: {fencing['detail']}" if fencing else ""
        table.add_row(
            h["name"], h["state"], str(h["vms"]), str(cap.get("vcpus", 0)), memory_gib, age, fenced
        )
    Console().print(table)
    return 0


def run_maintenance(args: argparse.Namespace) -> int:
    """``enter``: check that every VM can leave, then mark the host and empty it with a plan
    that is safe at every step. ``exit``: the host takes VMs again (and, with
    ``--move-back``, the VMs its last evacuation moved off return to it)."""
    client = client_of(args)
    states = {h["name"]: h["state"] for h in call(client, "GET", "/v1/hosts")}
    if args.host not in states:
        raise OpsError(f"host: unknown host '{args.host}'", 2)
    if args.action == "exit":
        call(client, "PUT", f"/v1/hosts/{args.host}/state", json={"state": "up"})
        print(f"{args.host}: up; it takes VMs again")
        return _move_back(client, args) if args.move_back else 0
    if states[args.host] == "down":
        raise OpsError(f"host: {args.host} is down; nothing can be migrated off it", 2)
    body = {"goal": "evacuate", "hosts": [args.host], "time_limit_s": args.time_limit}
    created = call(client, "POST", "/v1/plans", json=body)
    summary = created["summary"]
    reasons = [f"cannot leave: {why}" for why in created["not_placed"].values()]
    if summary["ha_reserve_held_before"] and not summary["ha_reserve_holds"] and not args.ignore_ha:
        reasons.append(f"the HA reserve holds today and would not with {args.host} empty "
                       "(free or add capacity first, or --ignore-ha)")  # fmt: skip
    elif summary.get("ha_reserve_breaks") and not args.ignore_ha:
        reasons.append(f"the HA reserve would break while {args.host} empties: "
                       f"{summary['ha_reserve_breaks'][0]} (or --ignore-ha)")  # fmt: skip
    if reasons:
        print("\n".join(reasons))
        call(client, "POST", f"/v1/plans/{created['id']}/cancel")
        print(f"{args.host}: nothing moved, the host stays {states[args.host]}")
        return 1
    call(client, "PUT", f"/v1/hosts/{args.host}/state", json={"state": "maintenance"})
    call(client, "POST", f"/v1/plans/{created['id']}/approve")
    call(client, "POST", f"/v1/plans/{created['id']}/apply")
    moves = created["summary"]["moves"]
    print(f"{args.host}: maintenance; plan {created['id']} moves {moves} VMs off")
    return 0 if args.no_wait else _watch(client, created["id"])


def _move_back(client: SchedulerClient, args: argparse.Namespace) -> int:
    created = call(client, "POST", "/v1/plans", json={"goal": "return", "hosts": [args.host]})
    for vm, why in created["not_placed"].items():
        print(f"{vm} stays: {why}")
    moves = created["summary"]["moves"]
    if not moves:
        call(client, "POST", f"/v1/plans/{created['id']}/cancel")
        print(f"{args.host}: no VM to move back")
        return 1 if created["not_placed"] else 0
    call(client, "POST", f"/v1/plans/{created['id']}/approve")
    call(client, "POST", f"/v1/plans/{created['id']}/apply")
    print(f"{args.host}: plan {created['id']} moves {moves} VMs back")
    status = 0 if args.no_wait else _watch(client, created["id"])
    return status or (1 if created["not_placed"] else 0)


def run_vms(args: argparse.Namespace) -> int:
    vms = call(client_of(args), "GET", "/v1/vms")
    table = Table("VM", "host", "vCPUs", "memory MiB", "conflict")
    for v in vms:
        table.add_row(v["name"], v["host"] or "-", str(v["demand"].get("vcpus", 0)),
                      str(v["demand"].get("memory_mib", 0)), v.get("conflict") or "")  # fmt: skip
    Console().print(table)
    return 1 if any(v.get("conflict") for v in vms) else 0


def run_plans(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action == "list":
        for plan in call(client, "GET", "/v1/plans"):
            print(f"{plan['id']:>5}  {plan['goal']:<12} {plan['status']}")
        return 0
    if args.action == "create":
        if args.goal is None:
            raise OpsError("--goal: required to create a plan", 2)
        body = {"goal": args.goal, "hosts": [h for h in args.hosts.split(",") if h],
                "time_limit_s": args.time_limit}  # fmt: skip
        created = call(client, "POST", "/v1/plans", json=body)
        s = created["summary"]
        hosts = f"{s['active_hosts_before']} -> {s['active_hosts_after']} hosts"
        print(
            f"plan {created['id']} proposed: {hosts}, {s['moves']} moves, bound {s['lower_bound']}"
        )
        return 0
    if args.plan_id is None:
        raise OpsError(f"plan_id: required for {args.action}", 2)
    if args.action in ("approve", "apply", "cancel"):
        answer = call(client, "POST", f"/v1/plans/{args.plan_id}/{args.action}")
        print(f"plan {answer['id']}: {answer['status']}")
        return 0
    if args.action == "show":
        _show(call(client, "GET", f"/v1/plans/{args.plan_id}"))
        return 0
    return _watch(client, args.plan_id)


def _show(plan: dict[str, Any]) -> None:
    print(f"plan {plan['id']} ({plan['goal']}): {plan['status']}")
    for order in plan["orders"]:
        extra = f" {order['error']}" if order["error"] else ""
        if order["status"] == "running" and order.get("progress_pct") is not None:
            extra += f" {order['progress_pct']:.0f} % copied"
        print(f"  {order['vm']} {order['from']} -> {order['to']}: {order['status']}{extra}")
    for event in plan["events"][-5:]:
        print(f"  event: {event['event']}")


def _watch(client: SchedulerClient, plan_id: int) -> int:
    """Follow a plan until it ends, printing each change of its migrations."""
    seen: dict[int, str] = {}
    while True:
        plan = call(client, "GET", f"/v1/plans/{plan_id}")
        for order in plan["orders"]:
            if seen.get(order["id"]) != order["status"]:
                seen[order["id"]] = order["status"]
                print(
                    f"{order['vm']} {order['from']} -> {order['to']}: {order['status']}", flush=True
                )
        if plan["status"] in FINISHED:
            print(f"plan {plan_id}: {plan['status']} ({plan['events'][-1]['event']})")
            return 0 if plan["status"] == "done" else 1
        time.sleep(1.0)
