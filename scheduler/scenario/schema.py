"""The shape of a scenario file, format version 1, as pydantic models.

Only the shape lives here (types, required keys, no unknown keys); cross-references such as
a rule naming an unknown VM are checked in ``scenario.py`` where the whole file is known.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from scheduler.units import parse_size_mib

# Every number has a sane upper bound, so that no file can overflow a computation.
SizeMiB = Annotated[int, BeforeValidator(parse_size_mib)]  # up to 1 EiB
Count = Annotated[int, Field(ge=0, le=2**40)]
Ratio = Annotated[float, Field(gt=0, le=1000)]
Cpus = Annotated[int, Field(gt=0, le=2**20)]
Share = Annotated[float, Field(ge=0, le=1000)]  # of the VM's size; above 1 when it bursts
Small = Annotated[int, Field(ge=1, le=1_000_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(Strict):
    name: str
    cpus: Cpus
    memory: SizeMiB
    disk: SizeMiB = 0
    resources: dict[str, Count] = {}
    labels: dict[str, str] = {}
    state: Literal["up", "maintenance", "down"] = "up"
    overcommit: dict[str, Ratio] = {}


class UsageSpec(Strict):
    cpu: Share = 0.0
    memory: Share = 0.0


class VMSpec(Strict):
    name: str
    vcpus: Cpus
    memory: SizeMiB
    disk: SizeMiB = 0
    host: str | None = None
    resources: dict[str, Count] = {}
    labels: dict[str, str] = {}
    usage: UsageSpec = UsageSpec()
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0


class HaSpec(Strict):
    host_failures_to_tolerate: Count = 0
    failure_domain: str | None = None


class PolicySpec(Strict):
    overcommit: dict[str, Ratio] = {}
    ha: HaSpec = HaSpec()


class RuleSpec(Strict):
    type: Literal["anti-affinity", "affinity", "spread", "pin", "ban"]
    vms: list[str] = []
    selector: dict[str, str] = {}
    hosts: list[str] = []
    label: str | None = None
    max_per_domain: Small | None = None
    soft: bool = False
    weight: Small = 1


class LimitsSpec(Strict):
    max_moves: Count | None = None
    max_parallel: Small = 8
    max_parallel_per_host: Small = 2


class GoalSpec(Strict):
    type: Literal["place", "consolidate", "balance", "evacuate", "repair"]
    hosts: list[str] = []


class ScenarioSpec(Strict):
    version: Literal[1] = 1
    name: str
    description: str = ""
    hosts: list[HostSpec]
    vms: list[VMSpec] = []
    policy: PolicySpec = PolicySpec()
    rules: list[RuleSpec] = []
    limits: LimitsSpec = LimitsSpec()
    goal: GoalSpec | Literal["place", "consolidate", "balance", "evacuate", "repair"] | None = None


# Overcommit keys as operators write them -> resource names of the model.
OVERCOMMIT_KEYS = {"cpu": "vcpus", "memory": "memory_mib", "disk": "disk_mib"}
