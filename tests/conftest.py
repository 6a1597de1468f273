"""Shared helpers: clusters written as small dicts, and solver settings for tests (fixed seed,
one worker, so every run searches the same way)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.model import Cluster
from scheduler.scenario.load import parse_scenario
from scheduler.solver.cpsat.solve import SolverSettings
from scheduler.solver.options import SearchOptions
from tests.postgres_server import PostgresServer, postgres_server

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def cluster_of(data: dict[str, Any]) -> Cluster:
    return parse_scenario(yaml.safe_dump(data), "<test>").cluster


def hosts(n: int, cpus: int = 16, memory: str = "64GiB", **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"h{i}", "cpus": cpus, "memory": memory, **extra} for i in range(1, n + 1)]


def vm(
    name: str, memory: str = "8GiB", host: str | None = None, vcpus: int = 2, **extra: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {"name": name, "vcpus": vcpus, "memory": memory, **extra}
    if host is not None:
        row["host"] = host
    return row


@pytest.fixture
def options() -> SearchOptions:
    return SearchOptions(SolverSettings(time_limit_s=10.0, workers=1, seed=0))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; each test asks it for a database."""
    with postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a store lives, on each backend: the contract tests run on both."""
    if request.param == "sqlite":
        return str(tmp_path / "vmpack.db")
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()
