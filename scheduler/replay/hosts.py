"""Host models for trace replay: size and power draw against CPU load.

The named models are the seven servers of the SPECpower_ssj2008 results that CloudSim's
``PowerModelSpecPower*`` classes carry (average watts at 0 %, 10 %, ..., 100 % load; the
source pages are on spec.org). Power between two points is linear. A custom model is
written ``CORESxMHZ/MEMORY@IDLE-PEAKW``, e.g. ``64x2600MHz/512GiB@180-450W``: linear from idle
to peak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from scheduler.units import parse_size_mib

Watts = tuple[float, ...]  # 11 points: 0 %, 10 %, ..., 100 % CPU load


@dataclass(frozen=True)
class HostModel:
    name: str
    cores: int
    core_mhz: int
    memory_mib: int
    watts: Watts

    @property
    def cpu_mhz(self) -> int:
        return self.cores * self.core_mhz

    def power_w(self, load: float) -> float:
        """Average draw at a CPU load in [0, 1] (values outside are clamped)."""
        load = min(1.0, max(0.0, load))
        low = min(9, int(load * 10))
        share = load * 10 - low
        return self.watts[low] + (self.watts[low + 1] - self.watts[low]) * share


def _spec(name: str, cores: int, mhz: int, gib: int, *watts: float) -> HostModel:
    return HostModel(name, cores, mhz, gib * 1024, tuple(watts))


# (model, cores, MHz per core, memory GiB, watts at 0..100 % load), SPECpower_ssj2008.
SPECPOWER: dict[str, HostModel] = {
    m.name: m
    for m in (
        _spec(
            "HpProLiantMl110G3PentiumD930",
            2,
            3000,
            4,
            105,
            112,
            118,
            125,
            131,
            137,
            147,
            153,
            157,
            164,
            169,
        ),
        _spec(
            "HpProLiantMl110G4Xeon3040",
            2,
            1860,
            4,
            86,
            89.4,
            92.6,
            96,
            99.5,
            102,
            106,
            108,
            112,
            114,
            117,
        ),
        _spec(
            "HpProLiantMl110G5Xeon3075",
            2,
            2660,
            4,
            93.7,
            97,
            101,
            105,
            110,
            116,
            121,
            125,
            129,
            133,
            135,
        ),
        _spec(
            "IbmX3250XeonX3470",
            4,
            2933,
            8,
            41.6,
            46.7,
            52.3,
            57.9,
            65.4,
            73,
            80.7,
            89.5,
            99.6,
            105,
            113,
        ),
        _spec(
            "IbmX3250XeonX3480",
            4,
            3067,
            8,
            42.3,
            46.7,
            49.7,
            55.4,
            61.8,
            69.3,
            76.1,
            87,
            96.1,
            106,
            113,
        ),
        _spec(
            "IbmX3550XeonX5670", 12, 2933, 12, 66, 107, 120, 131, 143, 156, 173, 191, 211, 229, 247
        ),
        _spec(
            "IbmX3550XeonX5675", 12, 3067, 16, 58.4, 98, 109, 118, 128, 140, 153, 170, 189, 205, 222
        ),
    )
}

# The published PlanetLab experiments: 800 hosts, ML110 G4 and G5 alternating.
CLOUDSIM_HOSTS = "400:HpProLiantMl110G4Xeon3040+400:HpProLiantMl110G5Xeon3075"

CUSTOM = re.compile(r"^(\d+)x(\d+)MHz/([0-9.]+[A-Za-z]*)@([0-9.]+)-([0-9.]+)W$", re.IGNORECASE)
GROUP = re.compile(r"^(\d+):(.+)$")


class HostSpecError(ValueError):
    """A host list that cannot be read: ``--hosts: reason``."""


def parse_model(text: str) -> HostModel:
    if text in SPECPOWER:
        return SPECPOWER[text]
    match = CUSTOM.match(text)
    if not match:
        known = ", ".join(SPECPOWER)
        raise HostSpecError(
            f"--hosts: '{text}' is neither a known model ({known}) "
            "nor CORESxMHZ/MEMORY@IDLE-PEAKW such as 64x2600MHz/512GiB@180-450W"
        )
    cores, mhz, memory, idle, peak = match.groups()
    try:
        memory_mib = parse_size_mib(memory)
    except ValueError as exc:
        raise HostSpecError(f"--hosts: '{text}': {exc}") from None
    low, high = float(idle), float(peak)
    if int(cores) <= 0 or int(mhz) <= 0 or memory_mib <= 0 or high < low:
        raise HostSpecError(f"--hosts: '{text}': sizes must be positive and peak >= idle")
    watts = tuple(low + (high - low) * step / 10 for step in range(11))
    return HostModel(text, int(cores), int(mhz), memory_mib, watts)


def parse_hosts(text: str) -> list[HostModel]:
    """``COUNT:MODEL[+COUNT:MODEL...]`` -> one model per host, groups interleaved (the
    CloudSim layout alternates its two models)."""
    groups: list[list[HostModel]] = []
    for part in text.split("+"):
        match = GROUP.match(part.strip())
        if not match or int(match.group(1)) <= 0:
            raise HostSpecError(
                f"--hosts: '{part}' is not COUNT:MODEL, e.g. 400:{next(iter(SPECPOWER))}"
            )
        groups.append([parse_model(match.group(2))] * int(match.group(1)))
    hosts: list[HostModel] = []
    for i in range(max(len(g) for g in groups)):
        hosts.extend(g[i] for g in groups if i < len(g))
    return hosts
