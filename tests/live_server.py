"""Run Frontdesk on a real socket for tests: in this event loop, or as a uvicorn subprocess.

Both bind 127.0.0.1 on a free port and return once the server accepts requests. The
in-process server lets a test inspect the app's state. The subprocess serves tests that need
separate processes, such as several servers on one database or a crash.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

HOST = "127.0.0.1"


def listening_socket() -> socket.socket:
    """Bind and listen on a free port of 127.0.0.1.

    The servers get this socket rather than a port number, so no other process can take the
    port between choosing it and binding it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(128)
    return sock


@dataclass(frozen=True)
class InProcessServer:
    app: FastAPI
    server: uvicorn.Server
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"


@asynccontextmanager
async def serve_in_process(
    app: FastAPI, *, startup_timeout: float = 10.0
) -> AsyncIterator[InProcessServer]:
    """Serve ``app`` with uvicorn in the running event loop; the lifespan runs too."""
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, lifespan="on", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(startup_timeout):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped during startup")
                await asyncio.sleep(0.01)
        yield InProcessServer(app=app, server=server, port=port)
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        finally:
            sock.close()


def server_environment(
    *, database_url: str, data_dir: Path, secret_key: str, **settings: str
) -> dict[str, str]:
    """FRONTDESK_* variables for a subprocess server: cheap password hashing, no form delay.

    Extra keyword arguments become FRONTDESK_<NAME> variables (``broker="postgres"``).
    """
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")
    }
    environment.update(
        {
            "FRONTDESK_DATABASE_URL": database_url,
            "FRONTDESK_DATA_DIR": str(data_dir),
            "FRONTDESK_SECRET_KEY": secret_key,
            "FRONTDESK_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "FRONTDESK_ARGON2_MEMORY_KIB": "8",
            "FRONTDESK_ARGON2_TIME_COST": "1",
            "FRONTDESK_FORM_MIN_FILL_SECONDS": "0",
            "FRONTDESK_PUBLIC_URL": "http://frontdesk.test",
            "FRONTDESK_LOG_FORMAT": "console",
            "FRONTDESK_LOG_LEVEL": "WARNING",
        }
    )
    environment.update({f"FRONTDESK_{name.upper()}": value for name, value in settings.items()})
    return environment


@dataclass
class SubprocessServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def output(self) -> str:
        """The server's stdout and stderr so far, for failure messages."""
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """End the process at once with SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask uvicorn to shut down gracefully (SIGTERM); SIGKILL if it takes too long."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@asynccontextmanager
async def run_subprocess_server(
    environment: dict[str, str], log_path: Path, *, startup_timeout: float = 30.0
) -> AsyncIterator[SubprocessServer]:
    """Start ``uvicorn --factory frontdesk.app:app_from_env`` and wait for /healthz.

    uvicorn serves a socket that this process opened and hands down (``--fd``).
    """
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "frontdesk.app:app_from_env",
                "--fd",
                str(sock.fileno()),
                "--no-access-log",
            ],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=[sock.fileno()],
        )
    finally:
        sock.close()
    server = SubprocessServer(process=process, port=port, log_path=log_path)
    try:
        await _wait_healthy(server, startup_timeout)
        yield server
    finally:
        server.stop()
        log_file.close()


async def _wait_healthy(server: SubprocessServer, timeout: float) -> None:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=2.0, trust_env=False) as client:
        try:
            async with asyncio.timeout(timeout):
                while True:
                    if server.process.poll() is not None:
                        raise RuntimeError(
                            f"the server exited with {server.process.returncode}:\n"
                            + server.output()
                        )
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(
                f"the server did not answer /healthz within {timeout} s:\n" + server.output()
            ) from None
