"""Trace replay: the readers, the host power models, the simulation's figures, the policies
(every vmpack plan through the solver-free checker) and the ``vmpack replay`` command."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.replay.azure import load_azure
from scheduler.replay.hosts import CLOUDSIM_HOSTS, SPECPOWER, HostSpecError, parse_hosts
from scheduler.replay.policies import Never, Threshold, Vmpack
from scheduler.replay.simulate import Fleet, ReplaySettings, forecast, replay
from scheduler.replay.traces import TraceError, constant_trace, load_bitbrains, load_planetlab
from tests.conftest import ROOT
from tests.test_cli import vmpack

TRACES = ROOT / "scenarios" / "traces"
PLANETLAB = TRACES / "planetlab-20110303-sample"
BITBRAINS = TRACES / "bitbrains-rnd-2013-7-sample.tar.xz"
AZURE = TRACES / "azure-v1-dev-sample" / "v1.dev.txt"
SMALL_HOSTS = "10:HpProLiantMl110G4Xeon3040+10:HpProLiantMl110G5Xeon3075"
G4 = SPECPOWER["HpProLiantMl110G4Xeon3040"]


def test_cloudsim_hosts_alternate_and_power_is_linear_between_points() -> None:
    hosts = parse_hosts(CLOUDSIM_HOSTS)
    assert len(hosts) == 800
    assert [h.cpu_mhz for h in hosts[:4]] == [3720, 5320, 3720, 5320]
    assert G4.power_w(0.0) == 86 and G4.power_w(1.0) == 117
    assert G4.power_w(0.05) == pytest.approx((86 + 89.4) / 2)
    custom = parse_hosts("2:64x2600MHz/512GiB@180-450W")[0]
    assert (custom.cpu_mhz, custom.memory_mib) == (64 * 2600, 512 * 1024)
    assert custom.power_w(0.5) == pytest.approx(315)


@pytest.mark.parametrize("spec, message", [
    ("800:NoSuchServer", "--hosts: 'NoSuchServer' is neither a known model"),
    ("lots:HpProLiantMl110G4Xeon3040", "--hosts: 'lots:HpProLiantMl110G4Xeon3040' is not COUNT:MODEL"),
    ("1:4x2600MHz/8GiB@300-100W", "peak >= idle"),
])  # fmt: skip
def test_bad_host_lists_are_named(spec: str, message: str) -> None:
    with pytest.raises(HostSpecError, match=message):
        parse_hosts(spec)


def test_planetlab_sample_has_cloudsim_vm_types() -> None:
    trace = load_planetlab(PLANETLAB)
    assert (trace.vm_count, trace.steps, trace.interval_s) == (40, 288, 300)
    assert list(trace.cpu_mhz[[0, 10, 20, 39]]) == [2500, 2000, 1000, 500]
    assert list(trace.memory_mib[[0, 10, 20, 39]]) == [870, 1740, 1740, 613]
    first = (PLANETLAB / trace.vm_names[0]).read_text().split()
    assert trace.usage_mhz[0, :3].tolist() == [int(p) / 100 * 2500 for p in first[:3]]


def test_planetlab_layout_as_one_wide_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("web,db\n10,50\n20,60\n")
    trace = load_planetlab(path)
    assert trace.vm_names == ("web", "db") and trace.steps == 2
    assert trace.usage_mhz[1].tolist() == [
        0.5 * 1000,
        0.6 * 1000,
    ]  # in the third quarter: 1000 MIPS


def test_bitbrains_rows_are_averaged_into_steps() -> None:
    trace = load_bitbrains(BITBRAINS)
    assert trace.vm_count == 6 and 288 <= trace.steps <= 291
    assert (trace.usage_mhz <= trace.cpu_mhz[:, None] + 1e-9).all()
    assert trace.vm_names[0] == "13"  # name-sorted members


def test_azure_arrivals_and_lifetimes(tmp_path: Path) -> None:
    trace = load_azure(AZURE, 300, 0.01)
    assert trace.steps == 24 and 40 <= trace.vm_count <= 80
    assert (trace.start < trace.end).all()
    assert trace.alive(0).sum() < trace.alive(23).sum() + trace.vm_count  # some arrive later
    assert {int(m) for m in trace.memory_mib} <= {768, 1792, 2048, 3584, 4096, 7168, 8192,
                                                  14336, 16384, 28672, 32768, 57344, 65536,
                                                  114688}  # flavours of flav_map.txt  # fmt: skip


@pytest.mark.parametrize("files, message", [
    ({"vm-a": "5\n7\nabc\n"}, r"vm-a:3: utilisation %: 'abc' is not a number"),
    ({"vm-a": "5\n101\n"}, r"vm-a:2: utilisation above 100 %"),
    ({"vm-a": "5\n-4\n"}, r"vm-a:2: utilisation %: '-4' is not a number >= 0"),
])  # fmt: skip
def test_bad_planetlab_files_name_file_and_line(tmp_path: Path, files: dict[str, str],
                                                message: str) -> None:  # fmt: skip
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(TraceError, match=message):
        load_planetlab(tmp_path)


def test_bad_bitbrains_files_name_file_line_and_column(tmp_path: Path) -> None:
    header = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ]"
    (tmp_path / "1.csv").write_text(header + "\n1;\t1;\t2600;\t10\n")
    with pytest.raises(
        TraceError, match=r"1.csv:1: missing column 'Memory capacity provisioned \[KB\]'"
    ):
        load_bitbrains(tmp_path)
    header += ";\tMemory capacity provisioned [KB]"
    (tmp_path / "1.csv").write_text(
        header + "\n1;\t1;\t2600;\t10;\t1024\n301;\t1;\t2600;\tn/a;\t1024\n"
    )
    with pytest.raises(TraceError, match=r"1.csv:3: CPU usage \[MHZ\]: 'n/a' is not a number"):
        load_bitbrains(tmp_path)


def test_energy_and_overload_figures_by_hand() -> None:
    """Two VMs on one G4 (3720 MHz) using 95 % of it for 12 steps: overloaded throughout,
    never saturated; energy is the SPECpower line at 95 % for an hour."""
    used = 0.95 * 3720 / 2
    trace = constant_trace(
        "t", 300, 12, [("a", 1860, 1024, used / 1860), ("b", 1860, 1024, used / 1860)]
    )
    result = replay(trace, [G4, G4], Never(), ReplaySettings(decide_every=6))
    s = result.summary()
    assert result.active_hosts == [1] * 12
    assert s["energy_kwh"] == pytest.approx(G4.power_w(0.95) / 1000, abs=0.01)
    assert (s["overload_host_hours"], s["overload_incidents"], s["sla_violation_host_hours"]) == (
        1.0,
        1,
        0.0,
    )
    assert s["migrations"] == 0 and s["unplaced_vm_hours"] == 0


def test_forecast_is_the_recent_peak_or_the_reservation() -> None:
    trace = load_planetlab(PLANETLAB)
    assert forecast(trace, 0, 12).tolist() == trace.cpu_mhz.astype(float).tolist()
    assert forecast(trace, 24, 12).tolist() == trace.usage_mhz[:, 12:24].max(axis=1).tolist()


def test_consolidating_policies_save_hosts_and_every_vmpack_plan_passes_the_checker() -> None:
    trace = load_planetlab(PLANETLAB).cut(72)
    hosts = parse_hosts(SMALL_HOSTS)
    summaries = {
        p.name: replay(trace, hosts, p).summary()
        for p in (Never(), Threshold(), Vmpack(time_limit_s=2, workers=1, check=True),
                  Vmpack(time_limit_s=2, workers=1, check=True, triggered=True))
    }  # fmt: skip
    never = summaries["never"]
    assert never["migrations"] == 0
    for name in ("threshold", "vmpack", "vmpack-triggered"):
        assert summaries[name]["active_host_hours"] < never["active_host_hours"], name
        assert summaries[name]["unplaced_vm_hours"] == 0
    assert summaries["vmpack"]["decisions"] == 5  # hourly, after the first hour


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([500, 1000, 2000, 2500]), st.sampled_from([613, 870, 1740]),
                          st.floats(0.0, 1.0)), min_size=1, max_size=12),
       st.sampled_from(["threshold", "vmpack"]))  # fmt: skip
def test_policies_never_overfill_memory_nor_exceed_the_target_by_forecast(
    vms: list[tuple[int, int, float]], name: str
) -> None:
    trace = constant_trace("p", 300, 3, [(f"v{i}", c, m, u) for i, (c, m, u) in enumerate(vms)])
    hosts = parse_hosts("6:HpProLiantMl110G5Xeon3075")
    fleet = Fleet(trace, hosts, ReplaySettings(decide_every=1), 1, np.zeros(len(vms), dtype=np.int64),
                  forecast(trace, 1, 1))  # fmt: skip
    fleet.host_of[:] = np.arange(len(vms)) % len(hosts)  # a spread start that fits memory
    policy = Threshold() if name == "threshold" else Vmpack(time_limit_s=1, workers=1, check=True)
    target = policy.decide(fleet)
    assert (target >= 0).all()
    memory = np.bincount(target, weights=trace.memory_mib, minlength=len(hosts))
    assert (memory <= fleet.memory_mib).all()
    cpu_before = fleet.loads(fleet.forecast_mhz)
    cpu_after = np.bincount(target, weights=fleet.forecast_mhz, minlength=len(hosts))
    cap = np.floor(fleet.cpu_mhz * 0.8)
    for host in range(len(hosts)):  # a host may stay over only if it was over and kept its VMs
        assert cpu_after[host] <= cap[host] + 1 or cpu_after[host] <= cpu_before[host]


def test_replay_command_writes_report_plots_and_json(tmp_path: Path) -> None:
    html, plots = tmp_path / "replay.html", tmp_path / "plots"
    run = vmpack("replay", str(PLANETLAB), "--hosts", SMALL_HOSTS, "--hours", "6",
                 "--policies", "never,threshold,vmpack", "--time-limit", "2", "--workers", "1",
                 "--check", "--html", str(html), "--plots", str(plots), "--plot-format", "svg",
                 "--json")  # fmt: skip
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert [r["policy"] for r in data["results"]] == ["never", "threshold", "vmpack"]
    assert (data["vms"], data["hosts"], data["steps"]) == (40, 20, 72)
    text = html.read_text()
    assert text.count("<svg") == 5 and "Key numbers" in text and "<script" not in text
    assert sorted(p.name for p in plots.iterdir()) == [
        "active-hosts.svg",
        "migrations.svg",
        "policies.svg",
        "power.svg",
        "utilisation.svg",
    ]
    run = vmpack("replay", str(BITBRAINS), "--format", "bitbrains", "--hosts", "6:IbmX3550XeonX5675",
                 "--policies", "never,threshold", "--plots", str(plots))  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "active host-hours" in run.stdout and (plots / "policies.png").stat().st_size > 1000


@pytest.mark.parametrize("args, message", [
    (["missing-dir"], "missing-dir: no such file or directory"),
    ([str(PLANETLAB), "--policies", "never,magic"], "--policies: unknown policy 'magic'"),
    ([str(PLANETLAB), "--every", "7m"], "--every: 7m is not a whole number of 300 s steps"),
    ([str(PLANETLAB), "--every", "soon"], "--every: 'soon' is not a duration"),
    ([str(PLANETLAB), "--hosts", "3:Nope"], "--hosts: 'Nope' is neither a known model"),
    ([str(PLANETLAB), "--target-load", "0"], "--target-load: must be a share"),
    ([str(BITBRAINS), "--format", "azure"], "flav_map.txt: missing (the azure layout keeps it beside"),
])  # fmt: skip
def test_bad_replay_input_is_one_line_and_status_2(args: list[str], message: str) -> None:
    run = vmpack("replay", *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.count("\n") == 1 and message in run.stderr, run.stderr


def test_bad_azure_token_names_file_line_and_token(tmp_path: Path) -> None:
    for name in ("flav_map.txt", "v1.interval_map.txt"):
        (tmp_path / name).write_text((AZURE.parent / name).read_text())
    with lzma.open(tmp_path / "v1.x.txt.xz", "wt") as handle:
        handle.write("300 b,b,|,g\n600 b,z\n")
    with pytest.raises(TraceError, match=r"v1.x.txt.xz:2: token 2: unknown flavour 'z'"):
        load_azure(tmp_path / "v1.x.txt.xz")
