"""The agent's own metrics, read from its status at scrape time (one prefix, zeroed labels)."""

from __future__ import annotations

from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.agent import Agent


class AgentCollector(Collector):
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        status = self.agent.status
        yield _by_outcome(
            "vmpack_agent_reports", "Reports to the scheduler",
            {"sent": status.reports_sent, "failed": status.reports_failed},
        )  # fmt: skip
        yield CounterMetricFamily(
            "vmpack_agent_probes_failed", "libvirt probes that failed", value=status.probes_failed
        )
        yield _by_outcome(
            "vmpack_agent_migrations", "Migrations carried out",
            {"succeeded": status.migrations_done, "failed": status.migrations_failed},
        )  # fmt: skip
        yield _by_outcome(
            "vmpack_agent_restarts", "VMs of failed hosts restarted here",
            {"succeeded": status.restarts_done, "failed": status.restarts_failed},
        )  # fmt: skip
        yield _by_outcome(
            "vmpack_agent_stale_copies_discarded",
            "Copies of VMs restarted on another host while this one was down, removed here",
            {"succeeded": status.discards_done, "failed": status.discards_failed},
        )
        yield GaugeMetricFamily(
            "vmpack_agent_last_report_timestamp_seconds", "When the last report was accepted",
            value=status.last_report_at,
        )  # fmt: skip


def _by_outcome(name: str, text: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, text, labels=["outcome"])
    for outcome, count in counts.items():
        family.add_metric([outcome], count)
    return family


def serve_metrics(agent: Agent, host: str, port: int) -> WSGIServer:
    """Serve /metrics from a background thread; ``shutdown()`` the server to stop it."""
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
