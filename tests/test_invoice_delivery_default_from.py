"""Invoice email sent with the default From address, which uses a special-use domain."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import run_jobs
from factories import owner
from frontdesk.runtime import Runtime
from invoice_factories import issued_invoice, save_settings
from smtp_server import SmtpServer
from smtp_server import smtp_server as smtp_server


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, Any]:
    # No email_from: the default, frontdesk@localhost.
    return smtp_server.settings()


async def test_default_from_delivers_invoice(
    client: httpx.AsyncClient, runtime: Runtime, smtp_server: SmtpServer
) -> None:
    assert runtime.settings.email_from == "Frontdesk <frontdesk@localhost>"
    staff = await owner(client)
    await save_settings(client, staff)
    invoice = await issued_invoice(client, runtime, staff)

    response = await client.post(
        f"/api/v1/invoices/{invoice['id']}/send", json={}, headers=staff.headers
    )
    assert response.status_code == 202, response.text
    await run_jobs(runtime)

    received = await smtp_server.wait_for(2)
    to_customer = [item for item in received if item.rcpt_tos == ["ada@example.org"]]
    assert len(to_customer) == 1
    assert to_customer[0].mail_from == "frontdesk@localhost"
    message = to_customer[0].parse()
    assert "frontdesk@localhost" in str(message["From"])
    assert message.get_content_type() == "multipart/mixed"
