"""The ``vmpack`` command as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCENARIO = str(ROOT / "scenarios" / "web-tier-consolidation.yaml")


def vmpack(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "scheduler.cli.main", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_plan_json_then_check(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    run = vmpack(
        "plan", SCENARIO, "--time-limit", "5", "--workers", "1", "--json", "--out", str(out)
    )
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan == json.loads(out.read_text())
    summary = plan["summary"]
    assert set(summary) >= {"active_hosts_before", "active_hosts_after", "lower_bound", "moves",
                            "memory_moved_mib", "steps", "solve_seconds", "status"}  # fmt: skip
    assert summary["active_hosts_after"] < summary["active_hosts_before"] == 16
    assert plan["migrations"][0].keys() >= {"step", "vm", "from", "to"}
    assert len(plan["migrations"]) == summary["moves"]
    check = vmpack("check", SCENARIO, str(out))
    assert check.returncode == 0 and check.stdout.strip().endswith("0 violations")


def test_a_capacity_plan_from_scratch_is_proven_optimal_and_checked(tmp_path: Path) -> None:
    scenario = str(ROOT / "scenarios" / "db-capacity-plan.yaml")
    out = tmp_path / "plan.json"
    run = vmpack("plan", scenario, "--time-limit", "10", "--json", "--out", str(out))
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)["summary"]
    assert summary["status"] == "optimal"
    assert summary["active_hosts_after"] == summary["lower_bound"]
    check = vmpack("check", scenario, str(out))
    assert check.returncode == 0 and check.stdout.strip().endswith("0 violations")


def test_default_scenario_and_readable_summary() -> None:
    run = vmpack("plan", "--time-limit", "3", "--workers", "1")
    assert run.returncode == 0, run.stderr
    assert "web-tier-consolidation: consolidate" in run.stdout
    assert "lower bound on hosts" in run.stdout and "wave 1:" in run.stdout


def test_check_rejects_a_tampered_plan(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    assert (
        vmpack(
            "plan", SCENARIO, "--time-limit", "3", "--workers", "1", "--out", str(out), "--json"
        ).returncode
        == 0
    )
    plan = json.loads(out.read_text())
    for move in plan["migrations"]:
        move["step"] = 1  # everything at once: parallel limits and capacity break
    out.write_text(json.dumps(plan))
    check = vmpack("check", SCENARIO, str(out))
    assert check.returncode == 1
    assert "max_parallel" in check.stdout and check.stdout.strip().startswith("wave 1:")


def test_evacuate_and_explain() -> None:
    run = vmpack(
        "plan",
        SCENARIO,
        "--goal",
        "evacuate",
        "--hosts",
        "kvm-01,kvm-02",
        "--json",
        "--time-limit",
        "5",
    )
    plan = json.loads(run.stdout)
    # license-1 is pinned to kvm-01/kvm-02: it cannot leave, and says so.
    assert plan["summary"]["unplaced_or_stranded"] == ["license-1"]
    assert run.returncode == 1
    why = vmpack(
        "explain", SCENARIO, "--goal", "evacuate", "--hosts", "kvm-01,kvm-02", "--time-limit", "5"
    )
    assert "license-1" in why.stdout and "excluded by pin #4" in why.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "missing.yaml"], "missing.yaml: cannot read"),
        (
            ["plan", SCENARIO, "--goal", "evacuate", "--hosts", "kvm-99"],
            "--hosts: unknown host 'kvm-99'",
        ),
        (["plan", SCENARIO, "--goal", "evacuate"], "--hosts: the evacuate goal needs"),
        (["plan", SCENARIO, "--time-limit", "0"], "--time-limit: must be positive"),
        (["check", SCENARIO, "pyproject.toml"], "pyproject.toml:1: malformed JSON"),
        (["explain", SCENARIO, "--vm", "nope"], "--vm: unknown VM 'nope'"),
        (
            ["serve", "--agent-token-file", "/nope", "--operator-token-file", "/nope"],
            "token file: /nope: No such file",
        ),
        (
            ["serve", "--listen", "8700", "--agent-token-file", "a", "--operator-token-file", "b"],
            "--listen: expected HOST:PORT",
        ),
        (
            [
                "serve",
                "--agent-token-file",
                "pyproject.toml",
                "--operator-token-file",
                "pyproject.toml",
            ],
            "pyproject.toml:1: tokens: one 'TOKEN [HOST]' a line",
        ),
        (
            ["agent", "--scheduler", "http://127.0.0.1:1", "--token-file", "/nope"],
            "--token-file: /nope: No such file",
        ),
        (
            [
                "agent",
                "--scheduler",
                "http://127.0.0.1:1",
                "--token-file",
                "README.md",
                "--label",
                "rack",
            ],
            "--label: expected KEY=VALUE",
        ),
        (["lab", "down", "--dir", "/nonexistent-lab"], "--dir: no lab in /nonexistent-lab"),
        (["ha-check", "--domain", "row"], "--domain: no host has the label 'row'"),
        (["failover", "--hosts", "kvm-99"], "--hosts: unknown host 'kvm-99'"),
        (["failover", "--domain", "rack=r9"], "--domain: no host has the label rack=r9"),
        (["failover"], "--hosts: name the failed hosts"),
        (["ha-check", "--failures", "16"], "--failures: must be between 0 and 15, got 16"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    run = vmpack(*args)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert message in run.stderr


def test_bad_scenario_exits_2_naming_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: x\nhosts:\n  - {name: h1, cpus: 4, memory: 8GiB}\nvms:\n  - {name: v, vcpus: 1, memory: 2GiB, hots: h1}\n"
    )
    run = vmpack("plan", str(bad))
    assert run.returncode == 2
    assert (
        run.stderr
        == f"vmpack: error: {bad}:5: vms[0].hots: unknown key 'hots' (did you mean 'host'?)\n"
    )


def test_failover_restarts_a_racks_vms_and_says_which_cannot(tmp_path: Path) -> None:
    scenario = str(ROOT / "scenarios" / "rack-anti-affinity.yaml")
    out = tmp_path / "failover.json"
    run = vmpack(
        "failover", scenario, "--domain", "rack=r1", "--out", str(out), "--time-limit", "10"
    )
    assert run.returncode == 1  # one replica of each database has nowhere to go
    plan = json.loads(out.read_text())
    assert sorted(plan["not_restarted"]) == ["db-a1", "db-b1", "db-c1", "db-d1"]
    assert all("spread" in why for why in plan["not_restarted"].values())
    assert {p["kind"] for p in plan["placements"]} == {"restart"} and plan["migrations"] == []
    check = vmpack("check", scenario, str(out))
    assert check.returncode == 0 and check.stdout.startswith("OK")


def test_vms_left_without_a_host_are_explained_in_the_json_and_on_stderr(tmp_path: Path) -> None:
    scenario = tmp_path / "three-apart.yaml"
    scenario.write_text(
        "name: three-apart\n"
        "hosts:\n  - {name: h1, cpus: 8, memory: 32GiB}\n  - {name: h2, cpus: 8, memory: 32GiB}\n"
        "vms:\n  - {name: a, vcpus: 1, memory: 1GiB, host: h1}\n"
        "  - {name: b, vcpus: 1, memory: 1GiB, host: h2}\n  - {name: c, vcpus: 1, memory: 1GiB}\n"
        "rules:\n  - {type: anti-affinity, vms: [a, b, c]}\n"
    )
    run = vmpack("plan", str(scenario), "--goal", "place", "--time-limit", "5", "--json")
    assert run.returncode == 1
    why = json.loads(run.stdout)["not_placed"]
    assert list(why) == ["c"] and "anti-affinity #1" in why["c"]
    assert run.stderr == f"vmpack: c: {why['c']}\n"
    explained = vmpack("explain", str(scenario), "--goal", "place", "--vm", "c")
    assert why["c"] in explained.stdout  # the same reason as vmpack explain
