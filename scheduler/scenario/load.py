"""Scenario YAML <-> cluster snapshot. Every error names the file, the line and the field."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import yaml

from scheduler.model import (
    DEFAULT_OVERCOMMIT,
    DISK,
    MEMORY,
    VCPUS,
    VM,
    Cluster,
    Goal,
    HaPolicy,
    Host,
    HostState,
    Limits,
    Policy,
    allocatable,
)
from scheduler.rules import RULE_TYPES, Rule
from scheduler.scenario.checks import check_references
from scheduler.scenario.schema import OVERCOMMIT_KEYS, ScenarioSpec

YamlPath = tuple[str | int, ...]


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10x faster
MAX_FILE_BYTES = 64 * 2**20  # a 100,000-VM scenario is about 15 MiB
MAX_NODES = 5_000_000
# How pydantic names the branches of the goal's union in an error's location.
_UNION_BRANCHES = ("GoalSpec", "literal['place','consolidate','balance','evacuate']", "str")


class ScenarioError(ValueError):
    """Bad input, as one line: ``file:line: field: reason``."""

    def __init__(self, source: str, line: int | None, field: str, reason: str) -> None:
        self.source, self.line, self.field, self.reason = source, line, field, reason
        where = f"{source}:{line}" if line else source
        super().__init__(f"{where}: {field}: {reason}" if field else f"{where}: {reason}")


@dataclass(frozen=True)
class Scenario:
    cluster: Cluster
    goal: Goal | None = None
    evacuate_hosts: tuple[str, ...] = ()
    description: str = ""


def load_scenario(path: str | Path) -> Scenario:
    return parse_scenario(read_text(path), str(path))


def read_text(path: str | Path) -> str:
    """A scenario-format file (a scenario or a policy) as text, or one line saying why not."""
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioError(str(path), None, "", f"cannot read: {exc.strerror}") from None
    return _text_of(raw, str(path))


def _text_of(raw: bytes, source: str) -> str:
    """The file as UTF-8 text, or one line saying why it is not."""
    if len(raw) > MAX_FILE_BYTES:
        raise ScenarioError(source, None, "", f"larger than {MAX_FILE_BYTES // 2**20} MiB")
    if b"\0" in raw:
        line = raw.count(b"\n", 0, raw.index(b"\0")) + 1
        raise ScenarioError(source, line, "", "not a text file (a NUL byte)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        byte = raw[exc.start]
        raise ScenarioError(source, line, "", f"not UTF-8 text (byte 0x{byte:02x})") from None


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    data, lines = read_yaml(text, source)
    return scenario_from_data(data, source, lines)


def read_yaml(text: str, source: str) -> tuple[object, dict[YamlPath, int]]:
    """The YAML document and the line of each of its paths, refusing hostile input."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()  # keeps line numbers for error reports
        if root is not None:
            _check_nodes(root, source)  # before anything is built from it
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError(source, line, "", f"malformed YAML: {reason}") from None
    except RecursionError:
        raise ScenarioError(source, None, "", "malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data, (_line_map(root) if root is not None else {})


def _check_nodes(root: yaml.Node, source: str) -> None:
    """Refuse what a scenario never needs and a hostile file uses: aliases (one alias can
    stand for a billion nodes once built), a key given twice in one mapping (the last would
    silently win) and more nodes than any real cluster has. Linear in the file's size."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        line = node.start_mark.line + 1
        if id(node) in seen:
            reason = "aliases (*name) are not allowed (this node is used again)"
            raise ScenarioError(source, line, "", reason)
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            raise ScenarioError(source, line, "", f"more than {MAX_NODES} YAML nodes")
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else id(key)
                if name in first:
                    at = key.start_mark.line + 1
                    also = first[name]
                    raise ScenarioError(source, at, str(name), f"given twice (also line {also})")
                first[name] = key.start_mark.line + 1
                stack += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def scenario_from_data(
    data: object, source: str = "<scenario>", lines: Mapping[YamlPath, int] | None = None
) -> Scenario:
    """Validate already-parsed scenario data (``lines`` maps YAML paths to line numbers)."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ScenarioError(source, 1, "", "a scenario is a mapping with name, hosts and vms")
    try:
        spec = ScenarioSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise schema_error(exc, source, lines) from None
    problem = check_references(spec)
    if problem:
        yaml_path, reason = problem
        raise ScenarioError(source, line_of(lines, yaml_path), field_name(yaml_path), reason)
    return _build(spec)


def _ha(spec: ScenarioSpec) -> HaPolicy:
    ha = spec.policy.ha
    return HaPolicy(ha.host_failures_to_tolerate, ha.failure_domain)


def _build(spec: ScenarioSpec) -> Scenario:
    policy_ratio = dict(DEFAULT_OVERCOMMIT)
    policy_ratio.update({OVERCOMMIT_KEYS.get(k, k): v for k, v in spec.policy.overcommit.items()})
    hosts = []
    for h in spec.hosts:
        physical = {VCPUS: h.cpus, MEMORY: h.memory, DISK: h.disk, **h.resources}
        ratio = policy_ratio | {OVERCOMMIT_KEYS.get(k, k): v for k, v in h.overcommit.items()}
        capacity = allocatable(physical, ratio)
        hosts.append(Host(h.name, physical, capacity, dict(h.labels), HostState(h.state)))
    vms = [
        VM(
            v.name,
            {VCPUS: v.vcpus, MEMORY: v.memory, DISK: v.disk, **v.resources},
            v.host,
            dict(v.labels),
            {"cpu": v.usage.cpu, "memory": v.usage.memory},
            v.priority,
        )
        for v in spec.vms
    ]
    rules = [_build_rule(i, r, spec) for i, r in enumerate(spec.rules, start=1)]
    limits = Limits(
        spec.limits.max_moves, spec.limits.max_parallel, spec.limits.max_parallel_per_host
    )
    cluster = Cluster(
        spec.name, tuple(hosts), tuple(vms), tuple(rules), Policy(policy_ratio, _ha(spec)), limits
    )
    goal_spec = spec.goal
    if goal_spec is None:
        return Scenario(cluster, description=spec.description)
    if isinstance(goal_spec, str):
        return Scenario(cluster, Goal(goal_spec), description=spec.description)
    return Scenario(cluster, Goal(goal_spec.type), tuple(goal_spec.hosts), spec.description)


def _build_rule(position: int, r: Any, spec: ScenarioSpec) -> Rule:
    members = tuple(r.vms) or tuple(
        v.name for v in spec.vms if all(v.labels.get(k) == val for k, val in r.selector.items())
    )
    return RULE_TYPES[r.type].from_fields(position, members, r)


# -- line numbers ---------------------------------------------------------------------------


def _line_map(node: yaml.Node, path: YamlPath = ()) -> dict[YamlPath, int]:
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, key_node.value)
            lines.update(_line_map(value_node, child))
            lines[child] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, index)))
    return lines


def line_of(lines: Mapping[YamlPath, int], path: YamlPath) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def field_name(path: Sequence[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def schema_error(
    exc: pydantic.ValidationError, source: str, lines: Mapping[YamlPath, int],
    root: type[pydantic.BaseModel] = ScenarioSpec,
) -> ScenarioError:  # fmt: skip
    errors = exc.errors()
    # A misspelt key also shows up as a missing one; the misspelling is the useful report.
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    # Unions report one error per branch ("goal.GoalSpec.type"): keep only data keys.
    path = tuple(p for p in error["loc"] if isinstance(p, int) or p not in _UNION_BRANCHES)
    reason = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden" and path:
        key = str(path[-1])
        known = _known_keys(root, path[:-1])
        guess = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else f" (known: {', '.join(known)})"
        reason = f"unknown key '{key}'{hint}"
    elif error["type"] == "missing":
        reason = "missing (required)"
    elif error["type"] == "literal_error":
        reason = f"{reason}, got {error.get('input')!r}"
    return ScenarioError(source, line_of(lines, path), field_name(path), reason)


def _known_keys(root: type[pydantic.BaseModel], path: YamlPath) -> list[str]:
    model: Any = root
    for part in path:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        inner = [
            a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")
        ]
        if not inner:
            return []
        model = inner[0]
    return sorted(model.model_fields)
