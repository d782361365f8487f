"""A server killed with SIGKILL after accepting a submission loses neither enquiry nor email.

The first server process accepts the submission while no SMTP server listens, so its send
job can only fail and wait for a retry. The process is then killed; a second process, started
once the SMTP server is up, must deliver the acknowledgement exactly once.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from conftest import truncate_all
from frontdesk.core.models import Job
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry
from smtp_server import ReceivedMessage, SmtpServer, free_port

SUBMITTER = "camille@example.org"


def server_environment(database_url: str, data_dir: Path, smtp_port: int) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")
    }
    environment.update(
        {
            "FRONTDESK_DATABASE_URL": database_url,
            "FRONTDESK_DATA_DIR": str(data_dir),
            "FRONTDESK_SECRET_KEY": "crash-test-" + uuid.uuid4().hex,
            "FRONTDESK_ENCRYPTION_KEYS": "k1:" + base64.b64encode(os.urandom(32)).decode(),
            "FRONTDESK_SMTP_HOST": "127.0.0.1",
            "FRONTDESK_SMTP_PORT": str(smtp_port),
            "FRONTDESK_SMTP_SECURITY": "none",
            "FRONTDESK_SMTP_TIMEOUT_SECONDS": "5",
            "FRONTDESK_FORM_MIN_FILL_SECONDS": "0",
            "FRONTDESK_ARGON2_MEMORY_KIB": "8",
            "FRONTDESK_ARGON2_TIME_COST": "1",
            "FRONTDESK_ARGON2_PARALLELISM": "1",
            "FRONTDESK_JOB_BACKOFF_BASE_SECONDS": "0.05",
            "FRONTDESK_JOB_BACKOFF_MAX_SECONDS": "0.2",
            "FRONTDESK_JOB_POLL_INTERVAL_SECONDS": "0.1",
            # A job claimed by the killed process is claimed again after this lease.
            "FRONTDESK_JOB_LEASE_SECONDS": "2",
            # The first process retries quickly while SMTP is down; it must not use up the
            # attempts before it is killed.
            "FRONTDESK_JOB_MAX_ATTEMPTS": "1000",
            "FRONTDESK_LOG_LEVEL": "WARNING",
            "FRONTDESK_SHUTDOWN_GRACE_SECONDS": "5",
        }
    )
    return environment


class ServerProcess:
    def __init__(self, environment: dict[str, str], port: int, log_path: Path) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "frontdesk.app:app_from_env",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"server exited early:\n{self.output()}")
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.output()}")

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if not self._log.closed:
            self._log.close()


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


async def accept_submission(base_url: str) -> tuple[dict[str, str], str]:
    """Sign up, create a form and submit it; return the owner's headers and the workspace id."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        signup = await client.post(
            "/api/v1/auth/signup",
            json={
                "email": "owner@studio.example",
                "password": "correct horse battery staple",
                "full_name": "Studio Owner",
                "workspace_name": "Studio Lumen",
            },
        )
        assert signup.status_code == 201, signup.text
        headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
        form = await client.post(
            "/api/v1/forms",
            headers=headers,
            json={
                "name": "Contact",
                "language": "fr",
                "fields": [
                    {"key": "name", "type": "text", "label": "Name", "required": True},
                    {"key": "email", "type": "email", "label": "Email", "required": True},
                    {"key": "message", "type": "long_text", "label": "Message"},
                ],
            },
        )
        assert form.status_code == 201, form.text
        submitted = await client.post(
            f"/f/{form.json()['public_id']}",
            json={"name": "Camille", "email": SUBMITTER, "message": "A quote, please."},
        )
        assert submitted.status_code == 201, submitted.text
        return headers, signup.json()["workspace"]["id"]


async def stored_state(
    database_url: str, workspace_id: str
) -> tuple[int, list[EmailMessage], list[Job]]:
    """Read the enquiry count, the acknowledgements and the send jobs from the database."""
    engine = create_async_engine(database_url)
    try:
        async with AsyncSession(engine) as session:
            enquiries = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Enquiry)
                .where(Enquiry.workspace_id == uuid.UUID(workspace_id))
            )
            messages = await session.scalars(
                sa.select(EmailMessage).where(EmailMessage.kind == "enquiry_acknowledgement")
            )
            jobs = await session.scalars(sa.select(Job).where(Job.name == "email.send"))
            return int(enquiries or 0), list(messages.all()), list(jobs.all())
    finally:
        await engine.dispose()


async def test_sigkill_loses_nothing(
    database_url: str, tmp_path: Path, processes: list[ServerProcess]
) -> None:
    await truncate_all(database_url)
    smtp_port = free_port()
    environment = server_environment(database_url, tmp_path / "data", smtp_port)

    first = ServerProcess(environment, free_port(), tmp_path / "first.log")
    processes.append(first)
    await first.wait_ready()
    headers, workspace_id = await accept_submission(first.base_url)
    first.kill()

    enquiries, messages, _jobs = await stored_state(database_url, workspace_id)
    assert enquiries == 1
    assert len(messages) == 1
    assert messages[0].status == "queued"
    message_id = messages[0].message_id

    smtp_server = SmtpServer(smtp_port)
    smtp_server.start()
    try:
        second = ServerProcess(environment, free_port(), tmp_path / "second.log")
        processes.append(second)
        await second.wait_ready()

        deadline = time.monotonic() + 20
        acknowledgements: list[ReceivedMessage] = []
        while time.monotonic() < deadline and not acknowledgements:
            acknowledgements = [m for m in smtp_server.messages if m.rcpt_tos == [SUBMITTER]]
            await asyncio.sleep(0.05)
        assert len(acknowledgements) == 1, second.output()

        async with httpx.AsyncClient(base_url=second.base_url) as client:
            listing = await client.get("/api/v1/enquiries", headers=headers)
        assert listing.status_code == 200, listing.text
        assert len(listing.json()["items"]) == 1
        # A late duplicate would come from a second job run; give the worker time to make one.
        await asyncio.sleep(0.5)
    finally:
        smtp_server.stop()

    received = [m for m in smtp_server.messages if m.rcpt_tos == [SUBMITTER]]
    assert len(received) == 1
    assert received[0].parse()["Message-ID"] == message_id
    _enquiries, messages, jobs = await stored_state(database_url, workspace_id)
    assert messages[0].status == "sent"
    assert messages[0].transport == "smtp"
    acknowledgement_jobs = [j for j in jobs if j.payload == {"email_id": str(messages[0].id)}]
    assert [job.status for job in acknowledgement_jobs] == ["succeeded"]
