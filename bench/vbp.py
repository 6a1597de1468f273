"""Vector bin packing quality on the public instances in ../shared/data/vbp.

    python -m bench.vbp --per-class 1 --time-limit 10

Each instance becomes a cluster of identical hosts (bins) and waiting VMs (items, their
sizes as extra resources, order shuffled as the data README asks); vmpack consolidates it.
Printed beside it: first-fit decreasing measured in the same run, and from the data the best
bin count of the published heuristics, the published lower bound and the optimum. Instances
with negative sizes (a flaw of some triplet files) are refused by the loader and skipped.
Only proven-optimal instances are taken.
"""

from __future__ import annotations

import argparse
import csv
import lzma
import random
import tarfile
import time
from collections import defaultdict
from pathlib import Path

from scheduler.model import VM, Cluster, Goal, Host, Policy, active_hosts
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.solver.pipeline import decide
from scheduler.solver.starts.greedy import first_fit_decreasing

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "vbp"


def parse_vbp(text: str) -> tuple[list[int], list[list[int]]]:
    numbers = [int(x) for x in text.split()]
    dims = numbers[0]
    capacity = numbers[1 : 1 + dims]
    count = numbers[1 + dims]
    items, at = [], 2 + dims
    for _ in range(count):
        sizes, multiplicity = numbers[at : at + dims], numbers[at + dims]
        if any(s < 0 for s in sizes):
            raise ValueError("negative item size")
        items += [sizes] * multiplicity
        at += dims + 1
    return capacity, items


def as_cluster(
    name: str, capacity: list[int], items: list[list[int]], bins: int, seed: int
) -> Cluster:
    dims = [f"d{k}" for k in range(len(capacity))]
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    hosts = tuple(
        Host(
            f"bin{i:03d}",
            dict(zip(dims, capacity, strict=True)),
            dict(zip(dims, capacity, strict=True)),
        )
        for i in range(bins)
    )
    vms = tuple(VM(f"item{j:03d}", dict(zip(dims, items[j], strict=True))) for j in order)
    return Cluster(name, hosts, vms, policy=Policy({}))


PUBLISHED = (
    "best_item_centric",
    "best_bin_centric",
    "best_multibin_pairing",
    "best_multibin_wfd_bfd",
)


def published_heuristic(row: dict[str, str]) -> int:
    """The best bin count any heuristic of Mommessin et al. reports (data README, -1: none)."""
    return min(int(row[c]) for c in PUBLISHED if row.get(c) not in (None, "", "-1"))


def load_instances(
    per_class: int, seed: int, most: int | None = None
) -> list[tuple[dict[str, str], str]]:
    with open(DATA / "vbp_best_known.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["optimal"] == "yes"]
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["benchmark_set"], r["instance_class"], r["n_items"][:2], r["dims"])].append(r)
    rng = random.Random(seed)
    chosen = [
        r
        for key in sorted(groups)
        for r in rng.sample(groups[key], min(per_class, len(groups[key])))
    ]
    if most is not None and most < len(chosen):  # an evenly spread sample of the groups
        chosen = [chosen[i * len(chosen) // most] for i in range(most)]
    wanted = {(r["archive"], r["file_in_archive"]): r for r in chosen}
    texts: list[tuple[dict[str, str], str]] = []
    for archive in sorted({a for a, _ in wanted}):
        with lzma.open(DATA / archive) as raw, tarfile.open(fileobj=raw) as tar:
            for member in tar:
                row = wanted.get((archive, member.name))
                if row is not None:
                    handle = tar.extractfile(member)
                    assert handle is not None
                    texts.append((row, handle.read().decode()))
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=1, help="instances per (set, class, n, d)")
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-instances", type=int, help="an evenly spread sample of this size")
    parser.add_argument("--only", default="", help="instances whose id contains this text")
    args = parser.parse_args()
    instances = load_instances(args.per_class, args.seed, args.max_instances)
    instances = [(row, text) for row, text in instances if args.only in row["instance_id"]]
    solved = total = skipped = published_solved = 0
    sums = {"vmpack": 0, "ffd": 0, "best": 0, "lb": 0, "published": 0}
    seconds: list[float] = []
    for row, text in instances:
        try:
            capacity, items = parse_vbp(text)
        except ValueError:
            skipped += 1
            continue
        probe = as_cluster(row["instance_id"], capacity, items, len(items), args.seed)
        ffd = len(active_hosts(first_fit_decreasing(probe)))
        cluster = as_cluster(row["instance_id"], capacity, items, ffd, args.seed)
        options = SearchOptions(
            SolverSettings(args.time_limit, 0, args.seed), full_model_max_pairs=40_000
        )
        started = time.monotonic()
        decision = decide(cluster, Goal.CONSOLIDATE, (), options)
        seconds.append(time.monotonic() - started)
        bins = len(active_hosts(decision.placement))
        unplaced = sum(1 for host in decision.placement.values() if host is None)
        best = int(row["best_known"])
        total += 1
        solved += bins == best and unplaced == 0
        bins += unplaced  # an item left out would need a bin of its own
        published = published_heuristic(row)
        published_solved += published == best
        measured = {"vmpack": bins, "ffd": ffd, "best": best, "published": published}
        for key, value in (measured | {"lb": int(row["lower_bound"])}).items():
            sums[key] += value
        size = f"items {len(items):>3} d {len(capacity):>2}"
        found = f"vmpack {bins:>3}  ffd {ffd:>3}  published {published:>3}  optimum {best:>3}"
        print(f"{row['instance_id']:<45} {size}  {found}  {seconds[-1]:5.1f} s", flush=True)
    print(f"\ninstances: {total} proven-optimal (skipped {skipped} with negative sizes)")
    print(
        f"optimum reached: vmpack {solved}/{total} = {100 * solved / max(1, total):.1f} %, "
        f"best published heuristic {published_solved}/{total}"
    )
    print(f"total bins: vmpack {sums['vmpack']}, FFD {sums['ffd']}, optimum {sums['best']}, "
          f"published lower bound {sums['lb']}")  # fmt: skip
    ratios = {k: sums[k] / sums["best"] for k in ("vmpack", "ffd", "published")}
    print(
        f"ratio to optimum: vmpack {ratios['vmpack']:.4f}, FFD {ratios['ffd']:.4f}, "
        f"best published heuristic {ratios['published']:.4f} (total bins {sums['published']})"
    )
    seconds.sort()
    print(f"seconds per instance: median {seconds[len(seconds) // 2]:.2f}, max {seconds[-1]:.2f}")


if __name__ == "__main__":
    main()
