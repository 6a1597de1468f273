"""``vmpack policy show|apply FILE``: the cluster policy a running scheduler enforces.

``apply`` checks the file here first, with the same one-line errors as ``vmpack plan``, then
sends it; the scheduler checks it again and keeps it as a new version.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from scheduler.cli.ops import call, client_of, connection_options
from scheduler.scenario.load import read_text, read_yaml
from scheduler.scenario.policy import policy_from_data


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser("policy", help="show or replace a running scheduler's policy")
    policy.add_argument("action", choices=["show", "apply"])
    policy.add_argument("file", nargs="?", help="apply: a policy file (policy, rules, limits)")
    connection_options(policy)
    policy.set_defaults(run=run_policy)


def run_policy(args: argparse.Namespace) -> int:
    client = client_of(args)
    if args.action == "show":
        shown = call(client, "GET", "/v1/policy")
        print(f"# version {shown['version']}, applied by {shown['by']}")
        print(yaml.safe_dump(shown["policy"], sort_keys=False) if shown["policy"] else "{}")
        return 0
    if not args.file:
        print("vmpack: error: file: apply needs a policy file", file=sys.stderr)
        return 2
    data, lines = read_yaml(read_text(args.file), args.file)
    policy_from_data(data, args.file, lines)  # one line naming file, line and field
    answer = call(client, "PUT", "/v1/policy", content=json.dumps(data),
                  headers={"Content-Type": "application/json"})  # fmt: skip
    print(f"policy version {answer['version']} in force")
    return 0
