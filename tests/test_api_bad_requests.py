"""No bad request gets a 500: the requests found by hand and by fuzzing are answered with a 4xx
that names the field, in one error shape, and the OpenAPI document lists those answers.
Schemathesis then fuzzes every operation with each kind of token (bounded examples, fixed
seed) and fails on any server error or undocumented answer."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service_harness import AGENT_TOKEN, BOUND_TOKEN, OPERATOR_TOKEN, running_service
from tests.test_service import reported

BIG = "18446744073709551616"  # 2**64: no record can have it as its id


def fresh(url: str, token: str | None = OPERATOR_TOKEN) -> httpx.Client:
    headers = [(b"Authorization", f"Bearer {token}".encode())] if token else []
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def chunked(mib: int) -> Iterator[bytes]:
    for _ in range(mib):
        yield b" " * 2**20


def domain(name: str, uuid: str) -> dict[str, object]:
    return {"name": name, "uuid": uuid, "vcpus": 1, "memory_mib": 128, "disk_mib": 0,
            "state": "running", "persistent": True}  # fmt: skip


def report_of(*domains: dict[str, object]) -> str:
    body = {"host": "kvm-09", "cpus": 4, "memory_mib": 4096, "disk_mib": 0, "domains": domains}
    return json.dumps(body)


CASES = [
    # (what, token, method, path, body, status, the error's start)
    (
        "a non-ASCII token",
        "tökén-0123456789abcdef",
        "GET",
        "/v1/hosts",
        None,
        401,
        "authorization: unknown token",
    ),
    ("'bearer' in lower case", f"bearer {OPERATOR_TOKEN}", "GET", "/v1/hosts", None, 200, None),
    (
        "memory beyond any integer",
        OPERATOR_TOKEN,
        "POST",
        "/v1/placements",
        '{"name": "x", "vcpus": 1, "memory": 1e300}',
        422,
        "memory: must be at most",
    ),
    (
        "memory in a huge unit",
        OPERATOR_TOKEN,
        "POST",
        "/v1/placements",
        '{"name": "x", "vcpus": 1, "memory": "9999999999PiB"}',
        422,
        "memory: must be at most",
    ),
    (
        "memory infinite",
        OPERATOR_TOKEN,
        "POST",
        "/v1/placements",
        '{"name": "x", "vcpus": 1, "memory": Infinity}',
        422,
        "memory: must be at most",
    ),
    (
        "a plan id beyond int64",
        OPERATOR_TOKEN,
        "GET",
        f"/v1/plans/{BIG}",
        None,
        404,
        "plan: no plan",
    ),
    (
        "an action on such a plan",
        OPERATOR_TOKEN,
        "POST",
        f"/v1/plans/{BIG}/approve",
        None,
        404,
        "plan: no plan",
    ),
    (
        "an order id beyond int64",
        AGENT_TOKEN,
        "POST",
        f"/v1/orders/{BIG}",
        '{"status": "running"}',
        404,
        "order: no order",
    ),
    (
        "a downtime of 1e30 ms",
        AGENT_TOKEN,
        "POST",
        "/v1/orders/1",
        '{"status": "succeeded", "downtime_ms": 1e30}',
        422,
        "downtime_ms:",
    ),
    ("a body that is not UTF-8", OPERATOR_TOKEN, "POST", "/v1/plans", b"\xff\xfe{", 400, "body:"),
    (
        "a body that is not JSON",
        OPERATOR_TOKEN,
        "POST",
        "/v1/plans",
        b"{",
        422,
        "body: JSON decode error",
    ),
    (
        "two domains of one name",
        AGENT_TOKEN,
        "POST",
        "/v1/reports",
        report_of(domain("d", "u1"), domain("d", "u2")),
        422,
        "domains: two domains with the name 'd'",
    ),
    (
        "two domains of one UUID",
        AGENT_TOKEN,
        "POST",
        "/v1/reports",
        report_of(domain("d1", "u1"), domain("d2", "u1")),
        422,
        "domains: two domains with the uuid 'u1'",
    ),
    ("an unknown route", OPERATOR_TOKEN, "GET", "/v1/nothing", None, 404, "Not Found"),
]


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("bad-requests")
    with running_service(tmp / "vmpack.db") as service:
        reported(tmp, service)
        yield service.url


@pytest.mark.parametrize(("what", "token", "method", "path", "body", "status", "error"), CASES)
def test_bad_requests_get_a_4xx_naming_the_field(
    service_url: str, what: str, token: str, method: str, path: str,
    body: str | bytes | None, status: int, error: str | None,
) -> None:  # fmt: skip
    value = token if token.lower().startswith("bearer ") else f"Bearer {token}"
    headers = [(b"Authorization", value.encode()), (b"Content-Type", b"application/json")]
    with httpx.Client(base_url=service_url, timeout=30) as client:
        answer = client.request(method, path, content=body, headers=headers)
    assert answer.status_code == status, (what, answer.text)
    if error is not None:
        assert set(answer.json()) == {"error"} and answer.json()["error"].startswith(error), what


def test_an_oversized_body_is_413_whether_declared_or_chunked(service_url: str) -> None:
    with fresh(service_url) as client:
        declared = client.post("/v1/plans", content=b" " * (9 * 2**20))
        streamed = client.post("/v1/plans", content=chunked(9))
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json() == {"error": "body: larger than 8388608 bytes"}


def test_the_openapi_document_lists_every_error_answer(service_url: str) -> None:
    with fresh(service_url, None) as client:
        spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/metrics"):
                continue
            listed = set(operation["responses"])
            assert {"401", "403", "404", "409", "413", "422"} <= listed, (method, path)


@pytest.mark.parametrize("token", [OPERATOR_TOKEN, AGENT_TOKEN, BOUND_TOKEN])
def test_fuzzing_every_operation_finds_no_server_error(service_url: str, token: str) -> None:
    run = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{service_url}/openapi.json",
         "-H", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", "20", "--seed", "1", "--workers", "1", "--no-shrink"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:]


@pytest.mark.parametrize(
    ("cert", "error"),
    [
        ("/nonexistent.pem", "--tls-cert: /nonexistent.pem: no such file"),
        ("pyproject.toml", "--tls-cert: pyproject.toml with --tls-key pyproject.toml:"),
    ],
)
def test_serve_with_a_bad_certificate_is_one_line_and_exit_2(
    tmp_path: Path, cert: str, error: str
) -> None:
    agent, operator = tmp_path / "agent.tokens", tmp_path / "operator.tokens"
    agent.write_text(f"{AGENT_TOKEN}\n")
    operator.write_text(f"{OPERATOR_TOKEN}\n")
    key = cert if cert != "/nonexistent.pem" else str(agent)
    run = subprocess.run(
        [sys.executable, "-m", "scheduler.cli.main", "serve", "--db", str(tmp_path / "v.db"),
         "--agent-token-file", str(agent), "--operator-token-file", str(operator),
         "--tls-cert", cert, "--tls-key", key],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and error in run.stderr, run.stderr
