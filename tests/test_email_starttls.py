"""Email over STARTTLS with login, against a test server with a self-signed certificate."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import run_jobs
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email import service
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from smtp_server import SmtpServer

USERNAME = "mailer"
PASSWORD = "mail-password"


def self_signed_context(folder: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def check_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USERNAME.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok)


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(
        tls_context=self_signed_context(tmp_path),
        require_starttls=True,
        authenticator=check_login,
        auth_required=True,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_overrides(request: pytest.FixtureRequest, tls_server: SmtpServer) -> dict[str, Any]:
    # Parametrized indirectly with whether the client checks the certificate.
    verify = getattr(request, "param", False)
    return {
        "smtp_host": tls_server.host,
        "smtp_port": tls_server.port,
        "smtp_security": "starttls",
        "smtp_username": USERNAME,
        "smtp_password": PASSWORD,
        "smtp_verify_certificate": verify,
    }


async def queue_verification(runtime: Runtime) -> EmailMessage:
    async with unit_of_work(runtime) as uow:
        return await service.send_verification_email(
            uow, to="ada@example.com", full_name="Ada", token="abc"
        )


async def test_starttls_with_login(runtime: Runtime, tls_server: SmtpServer) -> None:
    queued = await queue_verification(runtime)

    await run_jobs(runtime)

    received = await tls_server.wait_for(1)
    assert received[0].tls is True
    assert received[0].authenticated is True
    assert received[0].parse()["Message-ID"] == queued.message_id


@pytest.mark.parametrize("settings_overrides", [True], indirect=True)
async def test_untrusted_certificate_retries(runtime: Runtime, tls_server: SmtpServer) -> None:
    queued = await queue_verification(runtime)

    await run_jobs(runtime)

    async with runtime.sessionmaker() as session:
        job = await session.scalar(sa.select(Job).where(Job.name == "email.send"))
        message = await session.get(EmailMessage, queued.id)
    assert job is not None
    assert job.status == "pending"
    assert message is not None
    assert message.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in message.last_error
    assert tls_server.messages == []
