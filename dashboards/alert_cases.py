"""Unit cases for every alert in ``prometheus/rules.yml``: input series, and at chosen times
whether the alert fires, with which labels and summary. ``dashboards.build`` turns them into
``prometheus/rules_test.yml`` for ``promtool test rules``, copying each alert's description
and runbook from the rules so that only the templated summary is spelled out here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

SCHEDULER = 'job="vmpack-scheduler", instance="sched:8700"'
AGENT = 'job="vmpack-agent", instance="kvm-01:9701"'


@dataclass(frozen=True)
class Firing:
    labels: dict[str, str]
    summary: str


@dataclass(frozen=True)
class AlertCase:
    alert: str
    why: str
    series: dict[str, str]  # series selector -> promtool's expanding values notation
    expect: list[tuple[str, Firing | None]] = field(default_factory=list)  # (eval time, alert)


def scheduler(**labels: str) -> dict[str, str]:
    return {"job": "vmpack-scheduler", "instance": "sched:8700", **labels}


CASES = [
    AlertCase("VmpackSchedulerDown", "unreachable for 2 minutes fires; 1 minute does not",
              {f"up{{{SCHEDULER}}}": "1 1 0 0 0 0"},
              [("3m", None),
               ("5m", Firing(scheduler(severity="critical"),
                             "vmpack scheduler sched:8700 cannot be scraped"))]),
    AlertCase("VmpackHostDown", "a down host fires after a minute; an up host never",
              {f'vmpack_host_state{{{SCHEDULER}, host="kvm-02", state="down"}}': "0 0 1 1 1",
               f'vmpack_host_state{{{SCHEDULER}, host="kvm-03", state="down"}}': "0x4"},
              [("2m", None),
               ("3m", Firing({"host": "kvm-02", "severity": "critical"}, "host kvm-02 is down"))]),
    AlertCase("VmpackHostSuspect", "suspect for 5 minutes fires; a short silence does not",
              {f'vmpack_host_state{{{SCHEDULER}, host="kvm-04", state="suspect"}}':
               "1 1 0 0 1 1 1 1 1 1"},
              [("3m", None),
               ("9m", Firing({"host": "kvm-04", "severity": "warning"},
                             "host kvm-04 has stopped reporting"))]),
    AlertCase("VmpackHaReserveViolated", "stranded VMs for 10 minutes fire; none do not",
              {f"vmpack_ha_stranded_vms{{{SCHEDULER}}}": "0 0 3x12"},
              [("1m", None),
               ("13m", Firing(scheduler(severity="critical"),
                              "HA reserve violated: the worst failure would strand 3 VMs"))]),
    AlertCase("VmpackMigrationFailuresRising", "4 of 8 failing fires; 1 of 10 does not",
              {f'vmpack_migrations_total{{{SCHEDULER}, outcome="failed"}}': "0 0 0 1 1 1 1 3 4 4 4 4 4 4",
               f'vmpack_migrations_total{{{SCHEDULER}, outcome="succeeded"}}': "0 2 4 6 9 9 9 9 9 10 10 10 10 10"},
              [("6m", None),
               ("13m", Firing({"severity": "warning"},
                              "28.57% of live migrations failed in 15 minutes"))]),
    AlertCase("VmpackSolverTimingOut", "a timed-out plan 10% above the bound fires; 2% does not",
              {f'vmpack_solver_time_limit_reached_total{{{SCHEDULER}, goal="consolidate"}}': "0 0 1 1 1",
               f'vmpack_solver_gap_ratio{{{SCHEDULER}, goal="consolidate"}}': "0 0 0.02 0.02 0.1",
               f'vmpack_solver_time_limit_reached_total{{{SCHEDULER}, goal="place"}}': "0x4",
               f'vmpack_solver_gap_ratio{{{SCHEDULER}, goal="place"}}': "0.5x4"},
              [("3m", None),
               ("4m", Firing(scheduler(goal="consolidate", severity="warning"),
                             "consolidate plans stop at the time limit more than 5% above the bound"))]),
    AlertCase("VmpackAgentReportsStale", "a host silent for minutes fires; fresh reports do not",
              {f'vmpack_agent_report_age_seconds{{{SCHEDULER}, host="kvm-05"}}': "10 20 30 90 150 210 270",
               f'vmpack_agent_report_age_seconds{{{SCHEDULER}, host="kvm-06"}}': "5x6"},
              [("4m", None),
               ("6m", Firing(scheduler(host="kvm-05", severity="warning"),
                             "no report from kvm-05 for 4m 30s"))]),
    AlertCase("VmpackAgentCannotReport", "no accepted report for minutes fires; recent ones do not",
              {f"vmpack_agent_last_report_timestamp_seconds{{{AGENT}}}": "0 60 120 120 120 120 120 120"},
              [("2m", None),
               ("7m", Firing({"job": "vmpack-agent", "instance": "kvm-01:9701", "severity": "warning"},
                             "agent kvm-01:9701 has not had a report accepted for 2 minutes"))]),
    AlertCase("VmpackPlanStuck", "idle for 20 minutes fires; progress every few minutes does not",
              {f"vmpack_running_plan_idle_seconds{{{SCHEDULER}}}": "0 60 120 0 60 960 1020 1080 1140 1200 1260 1320"},
              [("4m", None),
               ("11m", Firing(scheduler(severity="warning"),
                              "a running plan has made no progress for 22m 0s"))]),
    AlertCase("VmpackFencingFailed", "fencing failing for 2 minutes fires; a failure that clears does not",
              {f"vmpack_hosts_fencing_failed{{{SCHEDULER}}}": "0 1 0 0 1 1 1 1"},
              [("3m", None),
               ("7m", Firing(scheduler(severity="critical"),
                             "1 down host(s) cannot be fenced: their VMs stay down"))]),
    AlertCase("VmpackHostIdentityConflict", "a refused report fires; none does not",
              {f'vmpack_reports_received_total{{{SCHEDULER}, outcome="identity_conflict"}}': "0 0 0 0 0 1 1 1"},
              [("3m", None),
               ("6m", Firing(scheduler(severity="critical", outcome="identity_conflict"),
                             "reports under a known host name come from another libvirt host"))]),
    AlertCase("VmpackVmRunningTwice", "a conflict lasting 2 minutes fires; one seen for a minute does not",
              {f"vmpack_vm_conflicts{{{SCHEDULER}}}": "0 1 0 0 1 1 1 1"},
              [("3m", None),
               ("7m", Firing(scheduler(severity="critical"), "1 VM(s) seen running on two hosts"))]),
    AlertCase("VmpackVmsNotRestarted", "VMs down for 10 minutes fire; a quick restart does not",
              {f"vmpack_vms_on_down_hosts{{{SCHEDULER}}}": "0 4 4 0 0 2x12"},
              [("4m", None),
               ("16m", Firing(scheduler(severity="critical"),
                              "2 VMs of down hosts have not been restarted for 10 minutes"))]),
]  # fmt: skip


def promtool_tests(rules: dict[str, Any]) -> dict[str, Any]:
    annotations = {
        r["alert"]: r["annotations"] for g in rules["groups"] for r in g["rules"] if "alert" in r
    }
    tests = []
    for case in CASES:
        checks = []
        for at, firing in case.expect:
            expected = []
            if firing is not None:
                wanted = dict(annotations[case.alert], summary=firing.summary)
                expected.append({"exp_labels": firing.labels, "exp_annotations": wanted})
            checks.append({"eval_time": at, "alertname": case.alert, "exp_alerts": expected})
        tests.append({
            "name": f"{case.alert}: {case.why}",
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
            "alert_rule_test": checks,
        })  # fmt: skip
    return {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}


def render_tests(rules_text: str) -> str:
    header = (
        "# Generated by `python -m dashboards.build` from dashboards/alert_cases.py; do not edit.\n"
        "# Run: cd dashboards/prometheus && promtool test rules rules_test.yml\n"
    )
    body = yaml.safe_dump(promtool_tests(yaml.safe_load(rules_text)), sort_keys=False, width=100)
    return header + body
