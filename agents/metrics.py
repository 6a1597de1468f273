"""The agent's own metrics, read from its status at scrape time (one prefix, zeroed labels)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.agent import Agent


class _AgentCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        status = self.agent.status
        reports = CounterMetricFamily(
            "vmpack_agent_reports", "Reports to the scheduler", labels=["outcome"]
        )
        reports.add_metric(["sent"], status.reports_sent)
        reports.add_metric(["failed"], status.reports_failed)
        yield reports
        yield CounterMetricFamily(
            "vmpack_agent_probes_failed", "libvirt probes that failed", value=status.probes_failed
        )
        migrations = CounterMetricFamily(
            "vmpack_agent_migrations", "Migrations carried out", labels=["outcome"]
        )
        migrations.add_metric(["succeeded"], status.migrations_done)
        migrations.add_metric(["failed"], status.migrations_failed)
        yield migrations
        yield GaugeMetricFamily(
            "vmpack_agent_last_report_timestamp_seconds", "When the last report was accepted",
            value=status.last_report_at,
        )  # fmt: skip


def serve_metrics(agent: Agent, host: str, port: int) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(_AgentCollector(agent))
    start_http_server(port, addr=host, registry=registry)
    return registry
