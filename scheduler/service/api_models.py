"""Request bodies of the scheduler API: strict shapes, so a malformed body is refused with
the name of the field, and nothing is stored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)

from agents.report import resource_name_ok
from scheduler.scenario.schema import RuleSpec
from scheduler.units import parse_size_mib

Name = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
Count = Annotated[int, Field(ge=0, le=2**40)]
DAY_MS = 86_400_000  # no migration, nor its downtime, lasts longer than a day
SizeMiB = Annotated[int, BeforeValidator(parse_size_mib), Field(ge=0)]


Labels = Annotated[dict[Name, Annotated[str, Field(max_length=253)]], Field(max_length=64)]


def _countable(names: dict[str, int]) -> dict[str, int]:
    for name in names:
        if not resource_name_ok(name):
            raise ValueError(
                f"'{name}' is not a countable resource name (a letter, then letters, digits, "
                "_ . -; cpu, memory and disk have their own fields)"
            )
    return names


# Countable resources beyond CPU, memory and disk: GPUs, vGPU types, licences.
Resources = Annotated[dict[str, Count], Field(max_length=64), AfterValidator(_countable)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainIn(Strict):
    name: Name
    uuid: Annotated[str, Field(min_length=1, max_length=64)]
    vcpus: Annotated[int, Field(ge=0, le=4096)]
    memory_mib: Count
    disk_mib: Count
    state: Literal["running", "paused", "shutdown", "shutoff", "crashed", "pmsuspended", "nostate"]
    persistent: bool
    cpu_time_ns: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    definition: Annotated[str, Field(max_length=256 * 1024)] = ""
    cpu_usage: Annotated[float, Field(ge=0, le=1)] | None = None
    labels: Labels = {}
    resources: Resources = {}
    migratable: bool = True


class ReportIn(Strict):
    host: Name
    cpus: Annotated[int, Field(gt=0, le=65536)]
    memory_mib: Annotated[int, Field(gt=0, le=2**40)]
    disk_mib: Count
    domains: Annotated[list[DomainIn], Field(max_length=10_000)] = []
    memory_free_mib: Count | None = None
    libvirt_version: Count = 0
    labels: Labels = {}
    libvirt_uri: Annotated[str, Field(max_length=1024)] = ""
    migration_address: Annotated[str, Field(max_length=253)] = ""
    host_uuid: Annotated[str, Field(max_length=64)] = ""
    resources: Resources = {}

    @field_validator("domains")
    @classmethod
    def _one_domain_a_name(cls, domains: list[DomainIn]) -> list[DomainIn]:
        """One host holds one domain of a name (and of a UUID); a report with two would
        hide one of them."""
        for key in ("name", "uuid"):
            seen: set[str] = set()
            for domain in domains:
                value = getattr(domain, key)
                if value in seen:
                    raise ValueError(f"two domains with the {key} '{value}'")
                seen.add(value)
        return domains


class OrderUpdateIn(Strict):
    status: Literal["running", "succeeded", "failed"]
    error: Annotated[str, Field(max_length=4096)] = ""
    downtime_ms: Annotated[int, Field(ge=0, le=DAY_MS)] | None = None
    seconds: Annotated[float, Field(ge=0, le=DAY_MS / 1000)] | None = None
    progress_pct: Annotated[float, Field(ge=0, le=100)] | None = None


class HostStateIn(Strict):
    state: Literal["up", "maintenance"]


class NewVMIn(Strict):
    name: Name
    vcpus: Annotated[int, Field(gt=0, le=4096)]
    memory: SizeMiB
    disk: SizeMiB = 0
    resources: Resources = {}  # {"gpu_t4": 1}: counted as the agents report them
    labels: Labels = {}  # what rule selectors match, as the VM's metadata will say
    priority: Annotated[int, Field(ge=-1000, le=1000)] = 0
    host_labels: Labels = {}  # only hosts whose agents carry these labels (zone=a)


RequestRules = Annotated[list[RuleSpec], Field(max_length=64)]


class PlacementIn(NewVMIn):
    rules: RequestRules = []  # kept in the policy once the VM is placed


class BatchIn(Strict):
    """VMs placed together, all or none, with the rules among them (and with VMs that
    exist) honoured: the replicas of a database in one call."""

    vms: Annotated[list[NewVMIn], Field(min_length=1, max_length=100)]
    rules: RequestRules = []

    @field_validator("vms")
    @classmethod
    def _one_vm_a_name(cls, vms: list[NewVMIn]) -> list[NewVMIn]:
        seen: set[str] = set()
        for vm in vms:
            if vm.name in seen:
                raise ValueError(f"two VMs named '{vm.name}'")
            seen.add(vm.name)
        return vms


class PlanIn(Strict):
    goal: Literal["place", "consolidate", "balance", "evacuate", "repair", "return"]
    hosts: Annotated[list[Name], Field(max_length=1000)] = []
    time_limit_s: Annotated[float, Field(gt=0, le=600)] = 30.0


def _shape(body: object) -> str:
    return "(batch)" if isinstance(body, dict) and "vms" in body else "(one VM)"


# One VM, or a batch when the body has ``vms``: only that shape is checked, so an error
# names the field of the shape sent (the tag in parentheses is left out of the name).
PlacementRequestIn = Annotated[
    Annotated[PlacementIn, Tag("(one VM)")] | Annotated[BatchIn, Tag("(batch)")],
    Discriminator(_shape),
]
