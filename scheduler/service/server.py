"""Serving the API of a runtime: uvicorn with TLS from a certificate and key file, or plain
HTTP only on loopback unless the operator explicitly allows it.

``Server`` is how the service starts and stops, for ``vmpack serve`` and the tests alike: the
runtime's loops start before the port opens, and stop after it closes."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from scheduler.service.app import create_app
from scheduler.service.runtime import Runtime


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8700
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain_http: bool = False

    def url(self) -> str:
        """How others reach this listener, unless told (``--advertise-url``)."""
        scheme = "https" if self.tls_cert is not None else "http"
        host = socket.getfqdn() if self.host in ("0.0.0.0", "::", "") else self.host
        return (
            f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"
        )

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_cert is not None and self.tls_key is not None:
            _check_tls(self.tls_cert, self.tls_key)
        if self.tls_cert is None and not self.allow_plain_http and not _loopback(self.host):
            raise ValueError(
                f"--listen {self.host}: plain HTTP is only served on loopback; "
                "give --tls-cert/--tls-key or --allow-plain-http"
            )


def _check_tls(cert: Path, key: Path) -> None:
    """Load the pair now, so that a missing or mismatched file is one line at start."""
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise ValueError(f"{flag}: {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror or str(exc)
        raise ValueError(f"--tls-cert: {cert} with --tls-key {key}: {reason}") from None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_server(app: FastAPI, listen: Listen) -> uvicorn.Server:
    listen.check()
    config = uvicorn.Config(
        app, host=listen.host, port=listen.port, log_level="warning", access_log=False,
        ssl_certfile=str(listen.tls_cert) if listen.tls_cert else None,
        ssl_keyfile=str(listen.tls_key) if listen.tls_key else None,
    )  # fmt: skip
    return uvicorn.Server(config)


class Server:
    """The API of ``runtime`` on ``listen``. ``run`` serves until interrupted; ``start`` serves
    from a thread and returns once connections are accepted, and ``stop`` ends it."""

    def __init__(self, runtime: Runtime, listen: Listen) -> None:
        self.runtime = runtime
        self._uvicorn = make_server(create_app(runtime), listen)
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        self.runtime.start()
        try:
            self._uvicorn.run()
        finally:
            self.runtime.stop()

    def start(self) -> None:
        self.runtime.start()
        self._thread = thread = threading.Thread(target=self._uvicorn.run, daemon=True)
        thread.start()
        while not self._uvicorn.started:
            if not thread.is_alive():
                self.runtime.stop()
                raise RuntimeError("the scheduler service did not start")
            thread.join(0.05)

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.runtime.stop()
