"""Write the bundled scenarios (seeded, so the files are reproducible).

    python -m bench.make_scenarios [--shared ../shared/data]

The Bitbrains scenario reads the real VM sizes from the shared data; the others are
generated. The written files are committed, so users and tests never need the shared data.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path
from typing import Any

import yaml

from bench.clusters import FLAVOUR_WEIGHTS, FLAVOURS, host_row, spread_cluster

ROOT = Path(__file__).resolve().parent.parent


def _flow_dump(data: dict[str, Any]) -> str:
    """Block style at the top, one flow-style line per host, VM and rule."""
    out = []
    for key, value in data.items():
        if isinstance(value, list):
            out.append(f"{key}:")
            out += [
                f"  - {yaml.safe_dump(item, default_flow_style=True, width=1000).strip()}"
                for item in value
            ]
        elif isinstance(value, dict):
            out.append(
                f"{key}: {yaml.safe_dump(value, default_flow_style=True, width=1000).strip()}"
            )
        else:
            out.append(yaml.safe_dump({key: value}, width=1000).strip())
    return "\n".join(out) + "\n"


def web_tier(rng: random.Random) -> dict[str, Any]:
    """16 hosts in 4 racks running a three-tier web estate, drifted apart over time."""
    hosts = [host_row(f"kvm-{i:02d}", (48, 384, 4), f"r{(i - 1) // 4 + 1}") for i in range(1, 17)]
    for h in hosts:
        h["labels"]["zone"] = "a" if h["labels"]["rack"] in ("r1", "r2") else "b"
    vms: list[dict[str, Any]] = []

    def add(name: str, vcpus: int, mem: int, app: str, host: int | None) -> None:
        row = {
            "name": name,
            "vcpus": vcpus,
            "memory": f"{mem}GiB",
            "disk": "80GiB",
            "labels": {"app": app},
        }
        if host is not None:
            row["host"] = f"kvm-{host:02d}"
        row["usage"] = {"cpu": round(rng.uniform(0.05, 0.6), 2)}
        vms.append(row)

    for i in range(1, 13):
        add(f"web-{i:02d}", 4, 16, "web", (i - 1) % 16 + 1)
    for i in range(1, 9):
        add(f"api-{i:02d}", 8, 32, "api", (i * 5) % 16 + 1)
    for i in range(1, 4):
        add(f"db-{i}", 16, 96, "db", (i * 4) % 16 + 1)
    for i in range(1, 5):
        add(f"cache-{i}", 4, 48, "cache", (i * 3) % 16 + 1)
    add("app-1", 8, 32, "app", 9)
    add("app-cache-1", 2, 16, "cache", 9)
    add("license-1", 8, 64, "erp", 2)
    for i in range(1, 31):
        vcpus, mem = rng.choices(FLAVOURS[:7], weights=FLAVOUR_WEIGHTS[:7])[0]
        add(f"misc-{i:02d}", vcpus, mem, "misc", rng.randrange(1, 17))
    for i in range(1, 4):
        add(f"new-{i:02d}", 2, 8, "web", None)
    return {
        "name": "web-tier-consolidation",
        "description": "A three-tier web estate spread thin over 16 hosts; pack it onto fewer.",
        "hosts": hosts,
        "vms": vms,
        "policy": {"overcommit": {"cpu": 4.0, "memory": 1.0, "disk": 1.0}},
        "rules": [
            {"type": "anti-affinity", "vms": ["db-1", "db-2", "db-3"]},
            {"type": "affinity", "vms": ["app-1", "app-cache-1"]},
            {"type": "spread", "selector": {"app": "web"}, "label": "rack", "max_per_domain": 6},
            {"type": "pin", "vms": ["license-1"], "hosts": ["kvm-01", "kvm-02"]},
            {"type": "ban", "vms": ["misc-01"], "hosts": ["kvm-16"]},
            {
                "type": "spread",
                "selector": {"app": "api"},
                "label": "zone",
                "max_per_domain": 5,
                "soft": True,
                "weight": 2,
            },
        ],
        "limits": {"max_moves": 200, "max_parallel": 8, "max_parallel_per_host": 2},
        "goal": "consolidate",
    }


def rack_anti_affinity(rng: random.Random) -> dict[str, Any]:
    """3 racks x 6 hosts; four replicated databases must survive a rack loss."""
    hosts = [
        host_row(f"kvm-{r}{i}", (32, 256, 4), f"r{r}") for r in range(1, 4) for i in range(1, 7)
    ]
    vms: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    names = [h["name"] for h in hosts]
    for group in "abcd":
        members = [f"db-{group}{k}" for k in range(1, 4)]
        for m in members:
            vms.append(
                {
                    "name": m,
                    "vcpus": 8,
                    "memory": "64GiB",
                    "disk": "200GiB",
                    "host": rng.choice(names),
                    "labels": {"app": f"db-{group}"},
                }
            )
        rules.append({"type": "anti-affinity", "vms": members})
        rules.append(
            {
                "type": "spread",
                "selector": {"app": f"db-{group}"},
                "label": "rack",
                "max_per_domain": 1,
            }
        )
    for i in range(1, 41):
        vcpus, mem = rng.choices(FLAVOURS[:8], weights=FLAVOUR_WEIGHTS[:8])[0]
        vms.append(
            {
                "name": f"svc-{i:02d}",
                "vcpus": vcpus,
                "memory": f"{mem}GiB",
                "disk": "40GiB",
                "host": rng.choice(names),
                "labels": {"app": "svc"},
            }
        )
    # Current placement must respect the hard rules: spread each database over the racks.
    for group_index in range(4):
        for k in range(3):
            vms[group_index * 3 + k]["host"] = f"kvm-{k + 1}{(group_index + k) % 6 + 1}"
    return {
        "name": "rack-anti-affinity",
        "description": "Replicated databases, one replica per rack, amid ordinary services.",
        "hosts": hosts, "vms": vms, "rules": rules,
        "limits": {"max_parallel": 6, "max_parallel_per_host": 2},
        "goal": "consolidate",
    }  # fmt: skip


def maintenance(rng: random.Random) -> dict[str, Any]:
    data = spread_cluster(12, 90, seed=rng.randrange(10**6), fill=0.55, racks=3)
    data["name"] = "host-maintenance"
    data["description"] = "kvm-0003 and kvm-0007 go into maintenance: move their VMs away."
    data["goal"] = {"type": "evacuate", "hosts": ["kvm-0003", "kvm-0007"]}
    data["rules"] = [
        {"type": "spread", "selector": {"app": "db"}, "label": "rack", "max_per_domain": 8}
    ]
    return data


def pending(rng: random.Random) -> dict[str, Any]:
    data = spread_cluster(24, 150, seed=rng.randrange(10**6), fill=0.5, racks=4)
    for i, h in enumerate(data["hosts"]):
        if i % 6 == 0:
            h["resources"] = {"gpu": 4}
    for i in range(1, 41):
        vcpus, mem = rng.choices(FLAVOURS, weights=FLAVOUR_WEIGHTS)[0]
        row: dict[str, Any] = {
            "name": f"new-{i:02d}",
            "vcpus": vcpus,
            "memory": f"{mem}GiB",
            "disk": "60GiB",
            "labels": {"app": "ml" if i <= 8 else "web"},
        }
        if i <= 8:
            row["resources"] = {"gpu": 1}
        data["vms"].append(row)
    data["name"] = "pending-vms"
    data["description"] = "40 new VMs wait for hosts, 8 of them need a GPU; nothing else moves."
    data["rules"] = [{"type": "anti-affinity", "vms": ["new-09", "new-10", "new-11"]}]
    data["goal"] = "place"
    return data  # fmt: skip


def balance(rng: random.Random) -> dict[str, Any]:
    data = spread_cluster(10, 60, seed=rng.randrange(10**6), fill=0.35, racks=2)
    for vm in data["vms"][:24]:
        vm["host"] = "kvm-0000" if int(vm["name"][-2:]) % 2 else "kvm-0001"
        vm["memory"] = "12GiB"
    data["name"] = "hot-spots"
    data["description"] = "Two hosts run hot while the others idle: even them out."
    data["goal"] = "balance"
    return data


def database_capacity(rng: random.Random) -> dict[str, Any]:
    """A capacity-planning question: large VMs, all waiting, on hosts all alike."""
    hosts = [
        {"name": f"db-{i:02d}", "cpus": 48, "memory": "384GiB", "disk": "8TiB",
         "labels": {"rack": f"r{i // 10 + 1:02d}"}}
        for i in range(40)
    ]  # fmt: skip
    sizes = [(8, 48, 400), (8, 64, 500), (12, 96, 800), (16, 128, 1000), (24, 160, 1500),
             (32, 192, 2000)]  # fmt: skip
    vms = []
    for i in range(90):
        vcpus, mem, disk = rng.choice(sizes)
        vms.append({"name": f"pg-{i:02d}", "vcpus": vcpus, "memory": f"{mem}GiB",
                    "disk": f"{disk}GiB", "labels": {"app": "db"}})  # fmt: skip
    return {
        "name": "db-capacity-plan",
        "description": "90 new database VMs, none placed yet: how few of these hosts hold them?",
        "hosts": hosts,
        "vms": vms,
        "goal": "consolidate",
    }


def bitbrains(shared: Path) -> dict[str, Any]:
    """1,200 business-critical VMs (Bitbrains Rnd sizes, 3 months) on 200 hosts."""
    with open(shared / "bitbrains_rnd" / "rnd_vm_summary.csv") as summary:
        rows = list(csv.DictReader(summary))
    rng = random.Random(7)
    hosts = [host_row(f"bb-{i:03d}", (16, 128, 2), f"r{i // 20 + 1:02d}") for i in range(200)]
    vms = []
    free_mib = [128 * 1024] * len(hosts)
    for r in rows:
        mem_mib = max(256, round(float(r["mem_provisioned_kb_mode"]) / 1024))
        host = rng.choice([i for i, free in enumerate(free_mib) if free >= mem_mib])
        free_mib[host] -= mem_mib
        vms.append({
            "name": f"bb-{r['month']}-{int(r['vm_number']):03d}",
            "vcpus": max(1, int(r["cores_mode"])), "memory": f"{mem_mib}MiB", "disk": "50GiB",
            "host": hosts[host]["name"],
            "usage": {"cpu": round(float(r["cpu_usage_pct_mean"]) / 100, 3)},
        })  # fmt: skip
    return {
        "name": "bitbrains-200-hosts",
        "description": "Bitbrains Rnd VM sizes (GWA-T-12, Shen et al. CCGrid 2015) on 200 hosts.",
        "hosts": hosts, "vms": vms,
        "policy": {"overcommit": {"cpu": 4.0, "memory": 1.0, "disk": 1.0}},
        "limits": {"max_parallel": 16, "max_parallel_per_host": 2},
        "goal": "consolidate",
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    for name, make in [
        ("web-tier-consolidation", web_tier), ("rack-anti-affinity", rack_anti_affinity),
        ("host-maintenance", maintenance), ("pending-vms", pending), ("hot-spots", balance),
        ("db-capacity-plan", database_capacity),
    ]:  # fmt: skip
        (ROOT / "scenarios" / f"{name}.yaml").write_text(_flow_dump(make(random.Random(name))))
    # The bundled default of ``vmpack plan`` is the web-tier scenario.
    default = (ROOT / "scenarios" / "web-tier-consolidation.yaml").read_text()
    (ROOT / "scheduler" / "scenario" / "default.yaml").write_text(default)
    if (args.shared / "bitbrains_rnd").exists():
        (ROOT / "scenarios" / "bitbrains-200-hosts.yaml").write_text(
            _flow_dump(bitbrains(args.shared))
        )


if __name__ == "__main__":
    main()
