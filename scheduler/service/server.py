"""Running the API: uvicorn with TLS from a certificate and key file, or plain HTTP only on
loopback unless the operator explicitly allows it."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI


@dataclass(frozen=True)
class Listen:
    host: str = "127.0.0.1"
    port: int = 8700
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_plain_http: bool = False

    def check(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        if self.tls_cert is None and not self.allow_plain_http and not _loopback(self.host):
            raise ValueError(
                f"--listen {self.host}: plain HTTP is only served on loopback; "
                "give --tls-cert/--tls-key or --allow-plain-http"
            )


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


def serve_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Start ``server`` in a background thread and wait until it accepts connections."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the scheduler service did not start")
        thread.join(0.05)
    return thread
