"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 that records what it receives.

Use the ``smtp_server`` fixture (import it into the test module) or ``SmtpServer`` directly.
The server runs in aiosmtpd's own thread and event loop, so tests talk to it over TCP like
any mail client. ``stop()`` and ``start()`` keep the port, to test an outage and a recovery.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # Whether the session was encrypted with STARTTLS when the message arrived.
    tls: bool
    # Whether the client logged in with AUTH before sending.
    authenticated: bool

    def parse(self) -> EmailMessage:
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message


class RecordingHandler:
    """Accept every message, or reply to RCPT TO with ``rcpt_reply`` when it is set."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMessage] = []
        self.rcpt_reply: str | None = None
        self.lock = threading.Lock()

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.lock:
            self.messages.append(
                ReceivedMessage(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=content,
                    tls=session.ssl is not None,
                    authenticated=bool(session.authenticated),
                )
            )
        return "250 Message accepted for delivery"


class SmtpServer:
    """An SMTP server on 127.0.0.1; ``smtp_options`` go to aiosmtpd's ``SMTP`` (auth, TLS)."""

    def __init__(
        self,
        port: int | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        **smtp_options: Any,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.handler = RecordingHandler()
        self.tls_context = tls_context
        self.smtp_options = smtp_options
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self.handler.lock:
            return list(self.handler.messages)

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send email to this server without TLS."""
        return {"smtp_host": self.host, "smtp_port": self.port, "smtp_security": "none"}

    def start(self) -> None:
        kwargs: dict[str, Any] = dict(self.smtp_options)
        if self.tls_context is not None:
            kwargs["tls_context"] = self.tls_context
        self._controller = Controller(self.handler, hostname=self.host, port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def wait_for(self, count: int, *, timeout: float = 10.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages arrived; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if len(messages) >= count:
                return messages
            await asyncio.sleep(0.02)
        raise AssertionError(f"expected {count} messages, got {len(self.messages)}")


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
