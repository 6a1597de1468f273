"""``vmpack rules list|add RULE|delete ID``: a running scheduler's rules, one at a time.

``add`` takes one rule in the scenario format, as YAML flow or JSON:
``vmpack rules add '{type: anti-affinity, vms: [db-1, db-2, db-3]}'``.
"""

from __future__ import annotations

import argparse
import sys

import yaml
from rich.console import Console
from rich.table import Table

from scheduler.cli.ops import call, client_of, connection_options


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rules = sub.add_parser("rules", help="list, add or delete a running scheduler's rules")
    rules.add_argument("action", nargs="?", default="list", choices=["list", "add", "delete"])
    rules.add_argument("rule", nargs="?", help="add: the rule (YAML or JSON); delete: its id")
    connection_options(rules)
    rules.set_defaults(run=run_rules)


def run_rules(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action == "list":
        listed = call(client, "GET", "/v1/rules")
        table = Table("id", "rule", "violations", "VMs not there yet")
        for entry in listed:
            text = yaml.safe_dump(entry["rule"], default_flow_style=True, width=200).strip()
            table.add_row(entry["id"], text, "; ".join(entry["violations"]) or "-",
                          ", ".join(entry["missing_vms"]) or "-")  # fmt: skip
        Console(width=200).print(table)
        return 1 if any(entry["violations"] for entry in listed) else 0
    if not args.rule:
        print(f"vmpack: error: rule: {args.action} needs a rule", file=sys.stderr)
        return 2
    if args.action == "delete":
        call(client, "DELETE", f"/v1/rules/{args.rule}")
        print(f"rule {args.rule} deleted")
        return 0
    try:
        rule = yaml.safe_load(args.rule)
    except yaml.YAMLError as exc:
        print(f"vmpack: error: rule: not YAML or JSON: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    added = call(client, "POST", "/v1/rules", json=rule)
    print(f"rule {added['id']} added (policy version {added['policy_version']})")
    return 0
