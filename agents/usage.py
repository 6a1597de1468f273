"""CPU usage of each domain from two reports: the CPU time it consumed between them over the
time its vCPUs had. The agent adds it to each report it sends (``DomainReport.cpu_usage``)."""

from __future__ import annotations

from collections.abc import Mapping

from agents.report import HostReport


def cpu_usage(before: HostReport, after: HostReport, seconds: float) -> Mapping[str, float]:
    """Domain name -> fraction of its vCPUs used (0..1) between the two reports.

    Domains missing from either report, restarted in between (CPU time went down), or shut
    off are left out: there is no interval to measure.
    """
    if seconds <= 0:
        raise ValueError(f"seconds: must be positive, got {seconds}")
    previous = {d.uuid: d for d in before.domains if d.state == "running"}
    usage = {}
    for domain in after.domains:
        earlier = previous.get(domain.uuid)
        if earlier is None or domain.state != "running" or domain.vcpus <= 0:
            continue
        spent_ns = domain.cpu_time_ns - earlier.cpu_time_ns
        if spent_ns < 0:
            continue
        usage[domain.name] = min(1.0, spent_ns / (seconds * 1e9 * domain.vcpus))
    return usage
