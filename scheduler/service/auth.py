"""Who may call what: agents and operators hold different bearer tokens.

Agents may only send reports and take orders; operators may read everything and change
plans and hosts. An agent token may be bound to one host (a line ``TOKEN HOST`` in the agent
token file): it then reports for that host only and sees that host's orders only. Tokens are
compared in constant time; a missing or unknown token is 401, the wrong role or host 403.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Header, HTTPException


class Role(enum.StrEnum):
    AGENT = "agent"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    role: Role
    host: str | None = None  # an agent token bound to one host
    fingerprint: str = ""  # names the token in records without revealing it

    def may_act_for(self, host: str) -> bool:
        return self.host is None or self.host == host


@dataclass(frozen=True)
class Tokens:
    agent: tuple[str, ...]
    operator: tuple[str, ...]
    agent_hosts: Mapping[str, str] = field(default_factory=dict)  # token -> its only host

    @staticmethod
    def from_files(agent_file: Path, operator_file: Path) -> Tokens:
        agents = _read_tokens(agent_file, bindable=True)
        operators = _read_tokens(operator_file, bindable=False)
        bound = {token: host for token, host in agents if host}
        return Tokens(tuple(t for t, _ in agents), tuple(t for t, _ in operators), bound)

    def principal(self, token: str) -> Principal | None:
        given = token.encode("utf-8", "surrogateescape")  # any text compares, as bytes
        for role, known in ((Role.AGENT, self.agent), (Role.OPERATOR, self.operator)):
            for candidate in known:
                if hmac.compare_digest(given, candidate.encode()):
                    digest = hashlib.sha256(candidate.encode()).hexdigest()[:12]
                    return Principal(role, self.agent_hosts.get(candidate), f"sha256:{digest}")
        return None


def _read_tokens(path: Path, bindable: bool) -> list[tuple[str, str]]:
    entries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > (2 if bindable else 1) or len(fields[0]) < 16:
            shape = "TOKEN [HOST]" if bindable else "TOKEN"
            raise ValueError(
                f"{path}:{number}: tokens: one '{shape}' a line, tokens of 16+ characters"
            )
        entries.append((fields[0], fields[1] if len(fields) > 1 else ""))
    if not entries:
        raise ValueError(f"{path}: tokens: the file has none")
    return entries


def requires(
    tokens: Tokens, allowed: Iterable[Role]
) -> Callable[[str | None], Coroutine[Any, Any, Principal]]:
    wanted = frozenset(allowed)

    # A coroutine, though it never waits: FastAPI runs a plain function in a worker thread,
    # a hop that would cost every request more than the check itself.
    async def check(authorization: str | None = Header(default=None)) -> Principal:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "authorization: a bearer token is required")
        who = tokens.principal(token.strip())
        if who is None:
            raise HTTPException(401, "authorization: unknown token")
        if who.role not in wanted:
            raise HTTPException(403, f"authorization: a {who.role.value} token may not do this")
        return who

    return check
