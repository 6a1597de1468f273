"""``vmpack serve``, ``vmpack agent`` and ``vmpack lab``: the live cluster's commands."""

from __future__ import annotations

import argparse
import logging
import shlex
import socket
from pathlib import Path
from typing import TYPE_CHECKING

from scheduler.model import VCPUS, HaPolicy, Policy
from scheduler.scenario.policy import LivePolicy, load_policy

if TYPE_CHECKING:
    from agents.devices import PciOffer

DEFAULT_LAB = Path("/var/tmp/vmpack-lab")


class LiveInputError(Exception):
    """Bad arguments for a live command (one line, exit status 2)."""


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the scheduler service")
    serve.add_argument("--listen", default="127.0.0.1:8700", metavar="HOST:PORT")
    serve.add_argument("--db", default="vmpack.db", metavar="FILE|postgresql://USER@HOST:PORT/DB",
                       help="a SQLite file (the default), or a PostgreSQL database")  # fmt: skip
    serve.add_argument("--agent-token-file", type=Path, required=True)
    serve.add_argument("--operator-token-file", type=Path, required=True)
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--allow-plain-http", action="store_true", help="plain HTTP beyond loopback")
    serve.add_argument("--suspect-after", type=float, default=30.0, metavar="SECONDS")
    serve.add_argument("--down-after", type=float, default=120.0, metavar="SECONDS")
    serve.add_argument("--policy", type=Path, metavar="FILE",
                       help="the cluster policy: policy, rules, limits")  # fmt: skip
    serve.add_argument("--cpu-overcommit", type=float,
                       help="deprecated: policy.overcommit.cpu in --policy")  # fmt: skip
    serve.add_argument("--ha-failures", type=int, metavar="N",
                       help="deprecated: policy.ha.host_failures_to_tolerate")  # fmt: skip
    serve.add_argument("--ha-domain", metavar="LABEL",
                       help="deprecated: policy.ha.failure_domain in --policy")  # fmt: skip
    serve.add_argument("--fence-command", default="", metavar="COMMAND",
                       help="powers a down host off; {host} is its name")  # fmt: skip
    serve.add_argument("--fence-timeout", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument("--power-off-command", default="", metavar="COMMAND",
                       help="switches an empty host off ({host})")  # fmt: skip
    serve.add_argument("--power-on-command", default="", metavar="COMMAND",
                       help="switches a standby host on when room is needed ({host})")  # fmt: skip
    serve.add_argument("--power-every", type=float, default=60.0, metavar="SECONDS")
    serve.add_argument(
        "--automation",
        choices=["recommend", "approve", "automatic"],
        default="approve",
        help="who carries plans out (default: an operator)",
    )
    serve.add_argument(
        "--consolidate-every",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="propose (or, automatic, run) a consolidation this often; 0: never",
    )
    serve.add_argument("--min-hosts-saved", type=int, default=1)
    serve.add_argument("--max-moves-per-hour", type=int, default=200)
    serve.add_argument(
        "--vm-cooldown",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="a VM moved automatically stays put this long",
    )
    serve.add_argument("--advertise-url", default="", metavar="URL",
                       help="where other schedulers send writes while this one leads "
                            "(default: from --listen)")  # fmt: skip
    serve.add_argument("--lease", type=float, default=10.0, metavar="SECONDS",
                       help="the leader's lease: a standby takes over this long after the "
                            "leader's last renewal")  # fmt: skip
    serve.add_argument("--placement", choices=["fast", "solver"], default="fast",
                       help="vector ranking (CP-SAT under HA), or CP-SAT always")  # fmt: skip
    serve.add_argument("--on-failure", choices=["stop", "continue", "replan"], default="stop",
                       help="after a failed migration: stop, carry on, or re-plan")  # fmt: skip
    serve.set_defaults(run=run_serve)

    agent = sub.add_parser("agent", help="run the host agent")
    agent.add_argument("--libvirt", default="qemu:///system", metavar="URI")
    agent.add_argument("--scheduler", required=True, metavar="URL[,URL...]",
                       help="the schedulers; reports go to whichever leads")  # fmt: skip
    agent.add_argument("--token-file", type=Path, required=True)
    agent.add_argument("--host", default=socket.gethostname())
    agent.add_argument("--interval", type=float, default=10.0, metavar="SECONDS")
    agent.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    agent.add_argument("--resource", action="append", default=[], metavar="NAME=COUNT",
                       help="a countable host resource libvirt cannot see (licences)")  # fmt: skip
    agent.add_argument("--pci", action="append", default=[], metavar="VENDOR:PRODUCT=NAME",
                       help="PCI devices offered to guests, e.g. 10de:1eb8=gpu_t4")  # fmt: skip
    agent.add_argument("--ca-file", help="CA bundle to verify the scheduler's certificate")
    agent.add_argument("--advertise-uri", default="", help="libvirt URI other hosts reach us at")
    agent.add_argument("--migration-address", default="")
    agent.add_argument("--metrics-listen", default="127.0.0.1:9701", metavar="HOST:PORT",
                       help="where the agent serves its own /metrics")  # fmt: skip
    agent.set_defaults(run=run_agent)

    lab = sub.add_parser("lab", help="a local multi-host libvirt lab with tiny guests")
    lab.add_argument(
        "action",
        choices=["up", "down", "power-off", "power-on"],
        help="power-off|power-on HOST: one lab host, as a host power command would",
    )
    lab.add_argument("host", nargs="?", help="the host to power off or on (lab1, lab2...)")
    lab.add_argument("--hosts", type=int, default=3)
    lab.add_argument("--guests", type=int, default=4)
    lab.add_argument("--dir", type=Path, default=DEFAULT_LAB)
    lab.set_defaults(run=run_lab)


def run_serve(args: argparse.Namespace) -> int:
    from scheduler.planning.autopilot import AutomationPolicy
    from scheduler.service.auth import Tokens
    from scheduler.service.backends import open_store
    from scheduler.service.executor import ExecutionPolicy
    from scheduler.service.liveness import Heartbeat
    from scheduler.service.loops.failover import FencingPolicy
    from scheduler.service.loops.power import PowerPolicy
    from scheduler.service.placer import PlacementPath
    from scheduler.service.runtime import Runtime, ServiceConfig
    from scheduler.service.server import Listen, Server
    from scheduler.service.store import StoreUnavailable

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise LiveInputError(f"--listen: expected HOST:PORT, got '{args.listen}'")
    try:
        tokens = Tokens.from_files(args.agent_token_file, args.operator_token_file)
        heartbeat = Heartbeat(args.suspect_after, args.down_after)
        listen = Listen(
            host.strip("[]"), int(port), args.tls_cert, args.tls_key, args.allow_plain_http
        )
        listen.check()
    except OSError as exc:
        raise LiveInputError(f"token file: {exc.filename}: {exc.strerror}") from None
    except ValueError as exc:
        raise LiveInputError(str(exc)) from None
    policy, policy_file = _serve_policy(args)
    commands: dict[str, tuple[str, ...]] = {}
    for option in ("fence_command", "power_off_command", "power_on_command"):
        try:
            commands[option] = tuple(shlex.split(getattr(args, option)))
        except ValueError as exc:
            raise LiveInputError(f"--{option.replace('_', '-')}: {exc}") from None
    if bool(commands["power_off_command"]) != bool(commands["power_on_command"]):
        raise LiveInputError("--power-off-command: needs --power-on-command too, and back")
    if args.power_every <= 0:
        raise LiveInputError(f"--power-every: must be positive, got {args.power_every}")
    fence = commands["fence_command"]
    power = PowerPolicy(commands["power_off_command"], commands["power_on_command"])
    automation = AutomationPolicy(
        args.automation, args.consolidate_every, args.min_hosts_saved,
        args.max_moves_per_hour, args.vm_cooldown,
    )  # fmt: skip
    config = ServiceConfig(
        tokens, heartbeat, policy, fencing=FencingPolicy(fence, args.fence_timeout),
        execution=ExecutionPolicy(on_failure=args.on_failure), automation=automation,
        power=power, power_tick_s=args.power_every, policy_file=policy_file,
        policy_source=str(args.policy or ""), placement=PlacementPath(args.placement),
        advertise_url=args.advertise_url.rstrip("/") or listen.url(), lease_s=args.lease,
    )  # fmt: skip
    try:
        store = open_store(args.db)
    except StoreUnavailable as exc:
        raise LiveInputError(f"--db: {exc}") from None
    try:
        Server(Runtime(config, store), listen).run()  # running plans resume at the next start
    finally:
        store.close()
    return 0


def _serve_policy(args: argparse.Namespace) -> tuple[Policy, LivePolicy | None]:
    """The policy file (checked now: one line and exit 2 if bad), or the old shorthands."""
    shorthands = [f for f in ("cpu_overcommit", "ha_failures", "ha_domain")
                  if getattr(args, f) is not None]  # fmt: skip
    if args.policy is not None:
        if shorthands:
            flag = "--" + shorthands[0].replace("_", "-")
            raise LiveInputError(f"{flag}: give it in the --policy file instead")
        return Policy(), load_policy(args.policy)  # a ScenarioError names file, line, field
    failures = args.ha_failures or 0
    if failures < 0:
        raise LiveInputError(f"--ha-failures: must be 0 or more, got {failures}")
    cpu = args.cpu_overcommit if args.cpu_overcommit is not None else 4.0
    ha = HaPolicy(failures, args.ha_domain or None)
    return Policy({**Policy().overcommit, VCPUS: cpu}, ha), None


def run_agent(args: argparse.Namespace) -> int:
    from agents.agent import Agent, AgentConfig
    from agents.events import ensure_event_loop
    from agents.metrics import serve_metrics

    labels = {}
    for item in args.label:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise LiveInputError(f"--label: expected KEY=VALUE, got '{item}'")
        labels[key] = value
    resources, offers = _declared_resources(args.resource), _pci_offers(args.pci)
    from agents.scheduler_client import scheduler_urls

    try:
        scheduler_urls(args.scheduler)
    except ValueError as exc:
        raise LiveInputError(str(exc)) from None
    try:
        token = args.token_file.read_text().strip()
    except OSError as exc:
        raise LiveInputError(f"--token-file: {args.token_file}: {exc.strerror}") from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ensure_event_loop()  # before the first connection, so lifecycle events reach the agent
    config = AgentConfig(
        args.host, args.libvirt, args.scheduler, token, args.interval, labels,
        ca_file=args.ca_file, advertise_uri=args.advertise_uri,
        migration_address=args.migration_address, resources=resources, pci_offers=offers,
    )  # fmt: skip
    host, _, port = args.metrics_listen.rpartition(":")
    if not host or not port.isdigit():
        raise LiveInputError(f"--metrics-listen: expected HOST:PORT, got '{args.metrics_listen}'")
    agent = Agent(config)
    serve_metrics(agent, host, int(port))
    agent.run()
    return 0


def _declared_resources(items: list[str]) -> dict[str, int]:
    from agents.report import resource_name_ok

    found: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not resource_name_ok(name) or not count.isdigit() or name in found:
            raise LiveInputError(
                f"--resource: expected NAME=COUNT once per NAME (a letter, then letters, "
                f"digits, _ . -; not cpu, memory or disk), got '{item}'"
            )
        found[name] = int(count)
    return found


def _pci_offers(items: list[str]) -> tuple[PciOffer, ...]:
    from agents.devices import PciOffer

    try:
        offers = tuple(PciOffer.parse(item) for item in items)
    except ValueError as exc:
        raise LiveInputError(str(exc)) from None
    ids = [(o.vendor, o.product) for o in offers]
    if len(set(ids)) < len(ids):
        raise LiveInputError("--pci: one VENDOR:PRODUCT given twice")
    return offers


def run_lab(args: argparse.Namespace) -> int:
    import libvirt

    from vmpack_lab.guest import build_guest, domain_xml
    from vmpack_lab.hosts import lab_hosts, load_lab, save_lab, start, stop

    state = args.dir / "lab.json"
    if args.action != "up":
        if not state.exists():
            raise LiveInputError(f"--dir: no lab in {args.dir}")
        hosts = load_lab(state)
    if args.action == "down":
        for host in hosts:
            stop(host)
        state.unlink()
        print(f"lab in {args.dir} stopped")
        return 0
    if args.action in ("power-off", "power-on"):
        chosen = [h for h in hosts if h.name == args.host]
        if not chosen:
            known = ", ".join(h.name for h in hosts)
            raise LiveInputError(f"host: no lab host '{args.host}' (the lab has {known})")
        (stop if args.action == "power-off" else start)(chosen[0])
        print(f"{args.host} powered {args.action.removeprefix('power-')}")
        return 0
    if not 1 <= args.hosts <= 8 or not 0 <= args.guests <= 8:
        raise LiveInputError("--hosts: 1 to 8, --guests: 0 to 8 (TCG guests on a small machine)")
    kernel, initrd = build_guest(args.dir / "guest")
    hosts = lab_hosts(args.hosts, args.dir / "hosts")
    for host in hosts:
        start(host)
    save_lab(hosts, state)
    for i in range(args.guests):
        host = hosts[i % len(hosts)]
        conn = libvirt.open(host.uri)
        console = args.dir / f"guest{i + 1}.console"
        conn.defineXML(domain_xml(f"guest{i + 1}", 128, kernel, initrd, console)).create()
        conn.close()
    for host in hosts:
        print(f"{host.name}: {host.uri}")
    print(f"{args.guests} guests booting; consoles in {args.dir}")
    print(f"stop with: vmpack lab down --dir {args.dir}")
    return 0
