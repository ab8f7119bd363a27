"""A real `xlir serve` (or any server command) in a subprocess on a free loopback port.

Shared by the server tests and the side-by-side benchmark: start, wait for `/health`, the
startup time, the log, and a SIGTERM stop that reports the exit code.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path
    startup_s: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (killed after `timeout`: -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return -9
        return self.proc.returncode


def start(
    command: list[str],
    port: int,
    log: Path,
    env: dict | None = None,
    timeout: float = 60,
    cwd: Path = REPO_ROOT,
) -> Server:
    """Run `command` (which listens on `port`) in `cwd` and wait until `/health` answers 200."""
    begin = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(proc, port, log, 0.0)
    while time.monotonic() - begin < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited {proc.returncode}:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                server.startup_s = time.monotonic() - begin
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{command[:3]} did not answer /health in {timeout} s:\n{server.output()}")


def start_xlir(tmp: Path, *flags: str, env: dict | None = None) -> Server:
    """`xlir serve --port <free> *flags`, its log in `tmp`."""
    port = free_port()
    command = [sys.executable, "-m", "xlir_plugin.cli", "serve", "--port", str(port), *flags]
    return start(command, port, tmp / f"xlir-serve-{port}.log", env)
