"""Scenario files: every bundled one loads; every kind of bad input is one clear line that
names the file, the line and the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.model import DISK, MEMORY, VCPUS
from scheduler.scenario.load import ScenarioError, load_scenario, parse_scenario
from scheduler.units import parse_size_mib
from tests.conftest import SCENARIOS

GOOD = """\
name: small
hosts:
  - {name: kvm-01, cpus: 8, memory: 64GiB, disk: 1TiB, labels: {rack: r1}}
  - {name: kvm-02, cpus: 8, memory: 64GiB, disk: 1TiB, labels: {rack: r2}, overcommit: {cpu: 2.0}}
vms:
  - {name: a, vcpus: 2, memory: 8GiB, disk: 20GiB, host: kvm-01}
  - {name: b, vcpus: 2, memory: 8GiB, disk: 20GiB, host: kvm-02}
rules:
  - {type: anti-affinity, vms: [a, b]}
"""


def test_bundled_scenarios_load() -> None:
    assert len(SCENARIOS) >= 5
    for path in SCENARIOS:
        assert load_scenario(path).cluster.vms


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512),
        ("16GiB", 16384),
        ("4TiB", 4 * 2**20),
        ("2TB", 1907349),
        ("1.5GiB", 1536),
        (300, 300),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size_mib(text) == size


def test_overcommit_is_applied_per_host() -> None:
    cluster = parse_scenario(GOOD, "good.yaml").cluster
    one, two = cluster.hosts
    assert one.capacity[VCPUS] == 32  # 8 cpus x default 4.0
    assert two.capacity[VCPUS] == 16  # 8 cpus x host override 2.0
    assert one.capacity[MEMORY] == 65536 and one.capacity[DISK] == 2**20


BAD = [
    ("hosts: [\n", 2, "", "malformed YAML"),
    (GOOD.replace("memory: 8GiB, disk: 20GiB, host: kvm-01", "memroy: 8GiB, disk: 20GiB, host: kvm-01"),
     6, "vms[0].memroy", "did you mean 'memory'"),
    (GOOD.replace("{name: a, vcpus: 2, memory: 8GiB, ", "{name: a, vcpus: 2, "), 6, "vms[0].memory", "missing"),
    (GOOD.replace("disk: 1TiB, labels: {rack: r2}", "disk: -1TiB, labels: {rack: r2}"), 4, "hosts[1].disk", "negative"),
    (GOOD.replace("name: b, vcpus: 2, memory: 8GiB", "name: b, vcpus: 2, memory: 80GiB"), 7, "vms[1]", "larger than every host"),
    (GOOD.replace("name: b,", "name: a,"), 7, "vms[1].name", "duplicate name 'a'"),
    (GOOD.replace("vms: [a, b]", "vms: [a, c]"), 9, "rules[0].vms[1]", "unknown VM 'c'"),
    (GOOD.replace("host: kvm-02}", "host: kvm-09}"), 7, "vms[1].host", "unknown host 'kvm-09'"),
    (GOOD + "  - {type: affinity, vms: [a, b]}\n", 9, "rules[0]", "contradicts affinity"),
    (GOOD + "  - {type: pin, vms: [a], hosts: [kvm-01]}\n  - {type: ban, vms: [a], hosts: [kvm-01]}\n",
     11, "rules[2]", "leave no host for a"),
    (GOOD.replace("type: anti-affinity", "type: anti-afinity"), 9, "rules[0].type", "anti-afinity"),
    (GOOD + "  - {type: spread, vms: [a, b], label: zone}\n", 10, "rules[1].label", "no label 'zone'"),
    (GOOD.replace("vms: [a, b]", "vms: [a, b], label: rack"), 9, "rules[0].label", "only spread takes 'label'"),
    (GOOD + "policy: {ha: {failure_domain: row}}\n", 10, "policy.ha.failure_domain", "no host has the label 'row'"),
    (GOOD.replace("vcpus: 2, memory: 8GiB, disk: 20GiB, host: kvm-01", "vcpus: two, memory: 8GiB, host: kvm-01"),
     6, "vms[0].vcpus", "integer"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "field", "words"), BAD)
def test_bad_input_is_one_line_naming_file_line_field(
    text: str, line: int, field: str, words: str
) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "cluster.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"cluster.yaml:{line}: ")
    assert field in message and words in message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")


def _bomb() -> bytes:
    """A 363-byte file whose aliases stand for 387 million strings once built."""
    lines = ["name: bomb", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    return ("\n".join([*lines, "hosts: []"]) + "\n").encode()


HOST = "hosts:\n  - {name: h1, cpus: 4, memory: 1GiB}\n"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"name: caf\xe9\nhosts: []\n", ":1: not UTF-8 text (byte 0xe9)"),
        (b"\x00\x01\x02binary", ":1: not a text file (a NUL byte)"),
        (
            b"name: x\nhosts:\n  - {name: h1, cpus: 1000000000000000000000000000000, memory: 1GiB}\n",
            ":3: hosts[0].cpus: Input should be less than or equal to 1048576",
        ),
        (
            b"name: x\nhosts:\n  - {name: h1, cpus: 4, memory: .inf}\n",
            ":3: hosts[0].memory: must be at most 1099511627776 MiB (1 EiB), got inf",
        ),
        (
            b"name: x\npolicy: {overcommit: {cpu: .inf}}\n" + HOST.encode(),
            ":2: policy.overcommit.cpu: Input should be less than or equal to 1000",
        ),
        (
            b"name: x\nhosts:\n  - name: h1\n    cpus: 16\n    cpus: 2\n    memory: 1GiB\n",
            ":5: cpus: given twice (also line 4)",
        ),
        (_bomb(), ":2: aliases (*name) are not allowed"),
        (b"name: x\nHosts: []\n", ":2: Hosts: unknown key 'Hosts' (did you mean 'hosts'?)"),
        (b"name: x\nhosts: " + b"[" * 20000 + b"]" * 20000 + b"\n", "malformed YAML"),
        (
            b"name: x\n"
            + HOST.encode()
            + b"vms:\n  - {name: v, vcpus: 1, memory: 1GiB, priority: 99999}\n",
            ":5: vms[0].priority: Input should be less than or equal to 1000",
        ),
    ],
)
def test_hostile_files_are_one_line_and_build_nothing(
    tmp_path: Path, content: bytes, error: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(content)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert str(raised.value).startswith(str(path)) and error in str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_hostile_file_ends_the_command_with_exit_2_and_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(_bomb())
    run = subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", "plan", str(path), "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2 and run.stdout == ""
    assert (
        run.stderr
        == f"vmpack: error: {path}:2: aliases (*name) are not allowed (this node is used again)\n"
    )
