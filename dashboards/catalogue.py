"""Every dashboard and panel vmpack ships, as plain data: the question each panel answers
and the PromQL that answers it. ``dashboards.build`` renders these into Grafana JSON; the
tests evaluate every expression against a real Prometheus.

Expressions may use two dashboard variables: ``$host`` (a regex of host names, "All" by
default) and ``$__rate_interval`` (Grafana's rate window). Heavy aggregations come from the
recording rules in ``prometheus/rules.yml`` (names ``vmpack:...``).
"""

from __future__ import annotations

from dataclasses import dataclass

HOSTS = 'host=~"$host"'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    question: str  # what an operator learns from it; shown as the panel's description
    queries: tuple[Query, ...]
    kind: str = "timeseries"  # timeseries | stat | table
    unit: str = "short"
    width: int = 8  # of Grafana's 24 columns


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    summary: str
    rows: tuple[Row, ...]
    per_host: bool = False  # offers the $host variable


def q(expr: str, legend: str = "") -> tuple[Query, ...]:
    return (Query(expr, legend),)


CAPACITY = Dashboard(
    "vmpack-capacity",
    "vmpack / Capacity",
    "How full the cluster and each host are, per resource, after overcommit.",
    (
        Row("Cluster", (
            Panel("Allocated share by resource", "How much of each resource is allocated now?",
                  q("vmpack:allocation:ratio_by_resource", "{{resource}}"), "stat", "percentunit"),
            Panel("Allocation over time", "Is allocation growing towards capacity?",
                  q("vmpack:allocation:ratio_by_resource", "{{resource}}"), unit="percentunit"),
            Panel("Free capacity by resource", "How much is left to place, in each resource's unit "
                  "(vCPUs, MiB)?",
                  q("vmpack:capacity:sum_by_resource - vmpack:allocated:sum_by_resource",
                    "{{resource}}"), "table"),
        )),
        Row("Hosts", (
            Panel("Memory allocated per host", "Which hosts are nearly full of memory?",
                  q(f'vmpack:host_allocation:ratio{{resource="memory_mib", {HOSTS}}}', "{{host}}"),
                  unit="percentunit"),
            Panel("vCPUs allocated per host", "Which hosts are nearly out of vCPUs?",
                  q(f'vmpack:host_allocation:ratio{{resource="vcpus", {HOSTS}}}', "{{host}}"),
                  unit="percentunit"),
            Panel("Most allocated hosts", "Which ten hosts have the least headroom, on their "
                  "scarcest resource?",
                  q("topk(10, max by (host) (vmpack:host_allocation:ratio))", "{{host}}"),
                  "table", "percentunit"),
        )),
    ),
    per_host=True,
)  # fmt: skip

CONSOLIDATION = Dashboard(
    "vmpack-consolidation",
    "vmpack / Consolidation",
    "How many hosts the VMs need, and how many stand empty and could be powered off.",
    (
        Row("Now", (
            Panel("Active hosts", "How many hosts run at least one VM?",
                  q("vmpack_active_hosts"), "stat", width=6),
            Panel("Empty up hosts", "How many up hosts run nothing and could be powered off?",
                  q("vmpack_empty_hosts"), "stat", width=6),
            Panel("VMs", "How many VMs does the scheduler know?", q("vmpack_vms"), "stat", width=6),
            Panel("VMs per active host", "How densely are VMs packed?",
                  q("sum(vmpack_vms) / clamp_min(sum(vmpack_active_hosts), 1)"), "stat", width=6),
        )),
        Row("Over time", (
            Panel("Active and empty hosts", "Did consolidation reduce the hosts in use?",
                  (Query("sum(vmpack_active_hosts)", "active"),
                   Query("sum(vmpack_empty_hosts)", "empty (could be powered off)"),
                   Query('sum(vmpack_hosts{state="up"})', "up"))),
            Panel("Share of up hosts empty", "What fraction of powered hosts is idle?",
                  q('sum(vmpack_empty_hosts) / clamp_min(sum(vmpack_hosts{state="up"}), 1)',
                    "empty share"), unit="percentunit"),
            Panel("VMs per host", "How are VMs spread over hosts?",
                  q(f"vmpack_host_vms{{{HOSTS}}}", "{{host}}")),
        )),
    ),
    per_host=True,
)  # fmt: skip

PLANS = Dashboard(
    "vmpack-plans",
    "vmpack / Plans and migrations",
    "What the scheduler is changing: plans, live migrations, their duration and downtime.",
    (
        Row("Now", (
            Panel("Migrations in flight", "How many migration orders are not finished?",
                  q("vmpack_migrations_in_flight"), "stat", width=6),
            Panel("Running plans", "How many plans are being carried out?",
                  q('vmpack_plans{status="running"}'), "stat", width=6),
            Panel("Running plan idle", "How long since a running plan last made progress?",
                  q("vmpack_running_plan_idle_seconds"), "stat", "s", width=6),
            Panel("Migration failure ratio (15 min)", "What share of recent migrations failed?",
                  q("vmpack:migration_failure:ratio_15m"), "stat", "percentunit", width=6),
        )),
        Row("Over time", (
            Panel("Plans by status", "How many plans are proposed, approved, running or done?",
                  q("vmpack_plans", "{{status}}")),
            Panel("Migrations per minute", "How fast are VMs moving, and how many fail?",
                  q("sum by (outcome) (rate(vmpack_migrations_total[$__rate_interval])) * 60",
                    "{{outcome}}")),
            Panel("Migration duration", "How long does a live migration take?",
                  (Query("vmpack:migration_seconds:p50_1h", "p50"),
                   Query("vmpack:migration_seconds:p95_1h", "p95")), unit="s"),
            Panel("Guest downtime", "How long are guests paused at the switch-over (libvirt "
                  "job statistics)?",
                  (Query("vmpack:migration_downtime_seconds:p50_1h", "p50"),
                   Query("vmpack:migration_downtime_seconds:p95_1h", "p95")), unit="s"),
            Panel("Migrations by agents, last hour", "Which hosts' agents carried out "
                  "migrations, and with what outcome?",
                  q("sum by (instance, outcome) (increase(vmpack_agent_migrations_total[1h]))",
                    "{{instance}} {{outcome}}"), "table"),
        )),
    ),
)  # fmt: skip

SOLVER = Dashboard(
    "vmpack-solver",
    "vmpack / Solver",
    "How long deciding takes, how close the answers are to the proven bound, and timeouts.",
    (
        Row("Solver", (
            Panel("Plans decided per hour", "How often does the scheduler decide, per goal?",
                  q("sum by (goal) (increase(vmpack_plans_created_total[1h]))", "{{goal}}")),
            Panel("Solve time p95 (1 h)", "How long does deciding take, per goal?",
                  q("vmpack:solver_seconds:p95_1h", "{{goal}}"), unit="s"),
            Panel("Mean solve time", "What is the average time to decide a plan?",
                  q("sum by (goal) (rate(vmpack_solver_seconds_sum[1h])) / "
                    "clamp_min(sum by (goal) (rate(vmpack_solver_seconds_count[1h])), 1e-9)",
                    "{{goal}}"), unit="s"),
            Panel("Gap to the lower bound", "How many more hosts did the last plan use than "
                  "the proven minimum (relative)?",
                  q("vmpack_solver_gap_ratio", "{{goal}}"), unit="percentunit"),
            Panel("Plans stopped at the time limit", "How often did the search run out of time "
                  "before proving its answer?",
                  q("sum by (goal) (increase(vmpack_solver_time_limit_reached_total[1h]))",
                    "{{goal}}")),
        )),
    ),
)  # fmt: skip

AGENTS_HA = Dashboard(
    "vmpack-agents-ha",
    "vmpack / Agents and HA",
    "Whether every host reports, which hosts are suspect or down, and whether the HA reserve "
    "would restart the VMs of any failure the policy names.",
    (
        Row("HA reserve", (
            Panel("HA reserve satisfied", "Would the VMs of every failure the policy names "
                  "restart on the survivors? (1 yes, 0 no)",
                  q("vmpack_ha_reserve_satisfied"), "stat", width=6),
            Panel("VMs stranded by the worst failure", "How many VMs would find no host?",
                  q("vmpack_ha_stranded_vms"), "stat", width=6),
            Panel("Failures that strand VMs", "How many of the failures checked strand VMs?",
                  q("vmpack_ha_failures_stranding_vms"), "stat", width=6),
            Panel("Hosts short", "How many more hosts would cover the worst failure?",
                  q("vmpack_ha_hosts_short"), "stat", width=6),
        )),
        Row("Failover", (
            Panel("VMs on down hosts", "How many VMs are not running anywhere, waiting for "
                  "their host to be fenced or for room?",
                  q("vmpack_vms_on_down_hosts"), "stat", width=6),
            Panel("Hosts whose fencing failed", "Which down hosts could not be fenced (their VMs "
                  "are not restarted)?", q("vmpack_hosts_fencing_failed"), "stat", width=3),
            Panel("VMs running twice", "Do two hosts report the same VM running (held, not "
                  "moved, until someone looks)?", q("vmpack_vm_conflicts"), "stat", width=3),
            Panel("Fencing, last hour", "How often did fencing succeed or fail?",
                  q("sum by (outcome) (increase(vmpack_fencing_total[1h]))", "{{outcome}}"),
                  width=6),
            Panel("Restarts, last hour", "How many VMs of failed hosts were restarted, and how "
                  "many restarts failed?",
                  q("sum by (outcome) (increase(vmpack_restarts_total[1h]))", "{{outcome}}"),
                  width=6),
        )),
        Row("Hosts and agents", (
            Panel("Hosts by state", "How many hosts are up, suspect, in maintenance or down?",
                  q("vmpack_hosts", "{{state}}")),
            Panel("Host states", "Which state is each host in?",
                  q(f"max by (host, state) (vmpack_host_state{{{HOSTS}}}) == 1",
                    "{{host}} {{state}}"), "table"),
            Panel("Report age per host", "How old is each host's last report?",
                  q(f"vmpack_agent_report_age_seconds{{{HOSTS}}}", "{{host}}"), unit="s"),
            Panel("Reports received per minute", "Are agents reporting, and are reports "
                  "rejected?",
                  q("sum by (outcome) (rate(vmpack_reports_received_total[$__rate_interval])) * 60",
                    "{{outcome}}")),
            Panel("Since each agent's last accepted report", "Can each agent reach the "
                  "scheduler (seen from the agent)?",
                  q("time() - vmpack_agent_last_report_timestamp_seconds", "{{instance}}"),
                  unit="s"),
            Panel("Agent errors, last hour", "Do agents fail to read libvirt or to report?",
                  (Query("sum by (instance) (increase(vmpack_agent_probes_failed_total[1h]))",
                         "{{instance}} probe"),
                   Query('sum by (instance) (increase(vmpack_agent_reports_total'
                         '{outcome="failed"}[1h]))', "{{instance}} report"))),
        )),
    ),
    per_host=True,
)  # fmt: skip

DASHBOARDS = (CAPACITY, CONSOLIDATION, PLANS, SOLVER, AGENTS_HA)
