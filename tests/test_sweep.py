"""Sweeps: the cases are the product of their axes, a case's answer does not depend on the
worker that computed it (one or two local processes, or a local Ray cluster started here),
and what-if reports carry their pictures."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.whatif import sweep
from scheduler.whatif.changes import WhatIfError, parse_changes
from tests.conftest import ROOT, cluster_of
from tests.test_cli import vmpack
from tests.test_whatif import BASE

WEB_TIER = str(ROOT / "scenarios" / "web-tier-consolidation.yaml")
SWEEP = ["sweep", WEB_TIER, "--fail-each", "rack", "--grow-steps", "0-20/20", "--time-limit", "1",
         "--json"]  # fmt: skip


def answers(run: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert run.returncode == 0, run.stderr
    results: list[dict[str, Any]] = json.loads(run.stdout)["results"]
    for result in results:
        result.pop("seconds")  # the only field that may differ
    return results


def test_cases_are_the_product_of_failures_and_growth() -> None:
    cluster = cluster_of(BASE)
    cases = sweep.cases(cluster, parse_changes(), "rack", sweep.growth_steps("0-50/10"))
    assert len(cases) == 2 * 6
    assert cases[0].name == "fail rack=r0 grow 0%" and cases[-1].name == "fail rack=r1 grow 50%"
    assert cases[7].changes.fail == ("rack=r1",) and cases[7].changes.grow["memory_mib"] == 1.1
    assert sweep.growth_steps("0,25,50") == [0.0, 25.0, 50.0]
    with pytest.raises(WhatIfError, match="--grow-steps: '50-0/10'"):
        sweep.growth_steps("50-0/10")
    with pytest.raises(WhatIfError, match="--fail-each: no host has the label 'room'"):
        sweep.cases(cluster, parse_changes(), "room", [0.0])


def test_one_or_two_local_workers_give_the_same_answers() -> None:
    one = answers(vmpack(*SWEEP, "--workers", "1"))
    two = answers(vmpack(*SWEEP, "--workers", "2"))
    assert one == two
    assert [r["case"] for r in one] == [
        f"fail rack=r{r} grow {g}%" for r in (1, 2, 3, 4) for g in (0, 20)
    ]
    assert all(r["hosts_needed"] >= r["hosts_lower_bound"] for r in one)


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray, "the ray command comes with the test dependencies"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = [ray, "start", "--head", "--port", str(port), "--num-cpus", "2",
             "--include-dashboard", "false", "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)


def test_a_ray_cluster_gives_the_same_answers_as_the_pool(ray_head: str, tmp_path: Path) -> None:
    on_ray = vmpack(*SWEEP, "--ray", ray_head)
    assert json.loads(on_ray.stdout)["where"] == f"Ray at {ray_head}"
    assert answers(on_ray) == answers(vmpack(*SWEEP, "--workers", "2"))
    html = tmp_path / "sweep.html"
    run = vmpack(*SWEEP[:-1], "--ray", ray_head, "--html", str(html), "--plots", str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "8 cases" in run.stdout and html.read_text().count("<svg") == 1
    assert (tmp_path / "sweep.png").stat().st_size > 1000


def test_whatif_report_and_plots(tmp_path: Path) -> None:
    html = tmp_path / "w.html"
    run = vmpack("whatif", WEB_TIER, "--grow", "cpu=20%", "--time-limit", "2", "--workers", "1",
                 "--html", str(html), "--plots", str(tmp_path), "--plot-format", "svg")  # fmt: skip
    assert run.returncode in (0, 1), run.stderr
    text = html.read_text()
    assert "What if: demand vcpus +20 %" in text and text.count("<svg") == 2
    assert {p.name for p in tmp_path.glob("*.svg")} == {"utilisation.svg", "headroom.svg"}


@pytest.mark.parametrize("args, message", [
    (["--grow-steps", "lots"], "--grow-steps: 'lots' is not LOW-HIGH/STEP"),
    (["--fail-each", "room"], "--fail-each: no host has the label 'room'"),
    (["--add", "3xbig"], "--add"),
    (["--workers", "-1"], "--workers: must be 0 (cores) or more"),
])  # fmt: skip
def test_bad_sweep_input_is_one_line_and_status_2(args: list[str], message: str) -> None:
    run = vmpack("sweep", WEB_TIER, *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr
