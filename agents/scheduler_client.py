"""Talking to one of several schedulers, and to the one that leads.

Agents and the command line take ``--scheduler URL1,URL2``. A request goes to the scheduler
that answered last; one that cannot be reached is skipped for the next; a standby answers a
write with 307 and the leader's URL in ``X-Vmpack-Leader``, which the request follows (the
token stays with the request: a plain redirect would drop it on another origin); a 503 (no
leader known) tries the others, and is the answer when all say so.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

LEADER_HEADER = "X-Vmpack-Leader"


def scheduler_urls(text: str) -> list[str]:
    """The URLs of ``--scheduler URL1,URL2``; ValueError naming the flag if one is not one."""
    urls = [u.strip().rstrip("/") for u in text.split(",") if u.strip()]
    if not urls or any(not u.startswith(("http://", "https://")) for u in urls):
        raise ValueError(f"--scheduler: expected URL[,URL...] with http(s)://, got '{text}'")
    return urls


class SchedulerClient:
    def __init__(
        self, urls: str, token: str, verify: ssl.SSLContext | bool = True, timeout: float = 10.0
    ) -> None:
        self.urls = [u.strip().rstrip("/") for u in urls.split(",") if u.strip()] or [""]
        self._token, self._verify, self._timeout = token, verify, timeout
        self._clients: dict[str, httpx.Client] = {}
        self.current = self.urls[0]

    @property
    def base_url(self) -> str:
        return self.current

    def _client(self, url: str) -> httpx.Client:
        client = self._clients.get(url)
        if client is None:
            client = httpx.Client(
                base_url=url, timeout=self._timeout, verify=self._verify,
                headers={"Authorization": f"Bearer {self._token}"},
            )  # fmt: skip
            self._clients[url] = client
        return client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer of the leader, or of the first scheduler that gives one; raises the
        last transport error if none could be reached."""
        order = [self.current, *(u for u in self.urls if u != self.current)]
        tried: set[str] = set()
        failure: httpx.TransportError | None = None
        answer: httpx.Response | None = None
        while order:
            url = order.pop(0)
            if url in tried:
                continue
            tried.add(url)
            try:
                response = self._client(url).request(method, path, **kwargs)
            except httpx.TransportError as exc:
                failure = exc
                continue
            leader = response.headers.get(LEADER_HEADER, "").rstrip("/")
            if response.status_code == 307 and leader and leader not in tried:
                order.insert(0, leader)  # the leader next, even one not on our list
                continue
            answer = response
            if response.status_code == 503 and order:
                continue  # no leader known there: ask the others
            self.current = url
            return response
        if answer is not None:
            return answer
        assert failure is not None
        raise failure

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
