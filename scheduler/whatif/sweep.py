"""Sweeps: many what-if questions about one scenario, answered in parallel.

A sweep is the product of its axes, for example every single-rack failure x growth 0-50 %
in 10 % steps, on top of any fixed changes. Each case is answered by ``capacity.answer`` in
its own worker: a local process pool, or the tasks of an existing Ray cluster. Solves stop
on CP-SAT's deterministic work clock with one thread each, so a case gets the same answer
whichever worker, machine or load it meets (workers also share one hash seed).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any

from scheduler.model import Cluster
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from scheduler.whatif.capacity import answer, answer_to_json
from scheduler.whatif.changes import Changes, WhatIfError, apply_changes

Progress = Callable[[int, int], None]  # (cases done, cases)
# Workers iterate sets of names; one hash seed everywhere makes that order, and so every
# answer, the same in a pool and on Ray.
HASH_SEED = "0"


@dataclass(frozen=True)
class Case:
    name: str
    failed: str  # "" or "label=value" / host name
    growth_pct: float
    changes: Changes


def cases(
    cluster: Cluster, base: Changes, fail_each: str, grow_steps: Sequence[float]
) -> list[Case]:
    """The product of 'each value of label ``fail_each`` failing' and growth percentages."""
    failures = [""]
    if fail_each:
        values = sorted({h.labels[fail_each] for h in cluster.hosts if fail_each in h.labels})
        if not values:
            raise WhatIfError(f"--fail-each: no host has the label '{fail_each}'")
        failures = [f"{fail_each}={v}" for v in values]
    out = []
    for failed in failures:
        for pct in grow_steps or [0.0]:
            grow = dict.fromkeys(("vcpus", "memory_mib"), 1 + pct / 100) if pct else {}
            merged = {**base.grow, **grow}
            changes = replace(base, fail=base.fail + ((failed,) if failed else ()), grow=merged)
            label = " ".join(p for p in (failed and f"fail {failed}", f"grow {pct:g}%") if p)
            out.append(Case(label, failed, pct, changes))
    return out


def growth_steps(text: str) -> list[float]:
    """``0-50/10`` -> [0, 10, 20, 30, 40, 50]; ``0,25,50`` -> [0, 25, 50]."""
    try:
        if "-" in text:
            span, _, step = text.partition("/")
            low, high = (float(x.rstrip("%")) for x in span.split("-"))
            size = float(step.rstrip("%")) if step else high - low or 1
            if size <= 0 or high < low:
                raise ValueError
            count = round((high - low) / size) + 1
            return [round(low + i * size, 6) for i in range(count)]
        return [float(x.rstrip("%")) for x in text.split(",") if x]
    except ValueError:
        raise WhatIfError(f"--grow-steps: '{text}' is not LOW-HIGH/STEP or a list") from None


def answer_case(cluster: Cluster, case: Case, time_limit_s: float, seed: int) -> dict[str, Any]:
    """One case, start to end, in whatever process runs it."""
    began = time.monotonic()
    settings = SolverSettings(time_limit_s, workers=1, seed=seed, deterministic=True)
    result = answer(apply_changes(cluster, case.changes), SearchOptions(settings))
    return {
        "case": case.name,
        "failed": case.failed,
        "growth_pct": case.growth_pct,
        **answer_to_json(result),
        "seconds": round(time.monotonic() - began, 2),
    }


def run(
    cluster: Cluster,
    all_cases: Sequence[Case],
    time_limit_s: float,
    workers: int = 1,
    ray_address: str | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every case's answer, in the order of ``all_cases``."""
    for case in all_cases:
        apply_changes(cluster, case.changes)  # bad changes fail here, before any work starts
    if ray_address:
        return _on_ray(cluster, all_cases, time_limit_s, seed, ray_address, progress)
    os.environ["PYTHONHASHSEED"] = HASH_SEED  # read by each spawned worker as it starts
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
        futures = {
            pool.submit(answer_case, cluster, case, time_limit_s, seed): i
            for i, case in enumerate(all_cases)
        }
        results: dict[int, dict[str, Any]] = {}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
            if progress is not None:
                progress(len(results), len(all_cases))
    return [results[i] for i in range(len(all_cases))]


def _on_ray(
    cluster: Cluster,
    all_cases: Sequence[Case],
    time_limit_s: float,
    seed: int,
    address: str,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    import ray  # only a Ray sweep needs it

    runtime = {"env_vars": {"PYTHONHASHSEED": HASH_SEED}}
    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False, runtime_env=runtime)
    try:
        task = ray.remote(num_cpus=1)(answer_case)
        shared = ray.put(cluster)  # sent once, not once per case
        refs = [task.remote(shared, case, time_limit_s, seed) for case in all_cases]
        index = {ref: i for i, ref in enumerate(refs)}
        results: dict[int, dict[str, Any]] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[index[ref]] = ray.get(ref)
            if progress is not None:
                progress(len(results), len(all_cases))
        return [results[i] for i in range(len(all_cases))]
    finally:
        ray.shutdown()
