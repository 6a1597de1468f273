"""The shape of a scenario file, format version 1, as pydantic models.

Only the shape lives here (types, required keys, no unknown keys); cross-references such as
a rule naming an unknown VM are checked in ``scenario.py`` where the whole file is known.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from scheduler.units import parse_size_mib

SizeMiB = Annotated[int, BeforeValidator(parse_size_mib)]
Count = Annotated[int, Field(ge=0)]
Ratio = Annotated[float, Field(gt=0)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HostSpec(Strict):
    name: str
    cpus: Annotated[int, Field(gt=0)]
    memory: SizeMiB
    disk: SizeMiB = 0
    resources: dict[str, Count] = {}
    labels: dict[str, str] = {}
    state: Literal["up", "maintenance", "down"] = "up"
    overcommit: dict[str, Ratio] = {}


class UsageSpec(Strict):
    cpu: Annotated[float, Field(ge=0)] = 0.0
    memory: Annotated[float, Field(ge=0)] = 0.0


class VMSpec(Strict):
    name: str
    vcpus: Annotated[int, Field(gt=0)]
    memory: SizeMiB
    disk: SizeMiB = 0
    host: str | None = None
    resources: dict[str, Count] = {}
    labels: dict[str, str] = {}
    usage: UsageSpec = UsageSpec()
    priority: int = 0


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
    max_per_domain: Annotated[int, Field(ge=1)] | None = None
    soft: bool = False
    weight: Annotated[int, Field(ge=1)] = 1


class LimitsSpec(Strict):
    max_moves: Count | None = None
    max_parallel: Annotated[int, Field(ge=1)] = 8
    max_parallel_per_host: Annotated[int, Field(ge=1)] = 2


class GoalSpec(Strict):
    type: Literal["place", "consolidate", "balance", "evacuate"]
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
    goal: GoalSpec | Literal["place", "consolidate", "balance", "evacuate"] | None = None


# Overcommit keys as operators write them -> resource names of the model.
OVERCOMMIT_KEYS = {"cpu": "vcpus", "memory": "memory_mib", "disk": "disk_mib"}
