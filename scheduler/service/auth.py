"""Who may call what: agents and operators hold different bearer tokens.

Agents may only send reports; operators may read everything and change plans and hosts.
Tokens are compared in constant time; a missing or unknown token is 401, a token of the
wrong role is 403.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fastapi import Header, HTTPException


class Role(enum.StrEnum):
    AGENT = "agent"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Tokens:
    agent: tuple[str, ...]
    operator: tuple[str, ...]

    @staticmethod
    def from_files(agent_file: Path, operator_file: Path) -> Tokens:
        return Tokens(_read_tokens(agent_file), _read_tokens(operator_file))

    def role_of(self, token: str) -> Role | None:
        for role, known in ((Role.AGENT, self.agent), (Role.OPERATOR, self.operator)):
            if any(hmac.compare_digest(token, candidate) for candidate in known):
                return role
        return None


def _read_tokens(path: Path) -> tuple[str, ...]:
    tokens = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not tokens or any(len(t) < 16 for t in tokens):
        raise ValueError(f"{path}: tokens: one per line, at least 16 characters each")
    return tokens


def requires(tokens: Tokens, allowed: Iterable[Role]) -> Callable[[str | None], Role]:
    wanted = frozenset(allowed)

    def check(authorization: str | None = Header(default=None)) -> Role:
        if not authorization or not authorization.startswith("Bearer "):
            raise HTTPException(401, "authorization: a bearer token is required")
        role = tokens.role_of(authorization.removeprefix("Bearer ").strip())
        if role is None:
            raise HTTPException(401, "authorization: unknown token")
        if role not in wanted:
            raise HTTPException(403, f"authorization: a {role.value} token may not do this")
        return role

    return check
