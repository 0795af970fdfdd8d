"""Local servers for the load benchmarks: a free port, and waiting for `/health`."""

import socket
import time

import httpx


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url, seconds=60):
    until = time.time() + seconds
    while time.time() < until:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not get ready")
