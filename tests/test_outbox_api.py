"""Outbox and dead-letter job endpoints: who sees which messages and jobs."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import sqlalchemy as sa

from conftest import bearer, run_jobs, signup
from frontdesk.auth.models import User
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email import service
from frontdesk.email.models import EmailMessage
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership


async def join_as(
    client: httpx.AsyncClient, runtime: Runtime, workspace_id: str, role: str
) -> dict[str, str]:
    """Sign up a new user, add them to ``workspace_id`` with ``role`` and switch to it."""
    tokens = await signup(client, full_name=f"New {role}", workspace_name="Own")
    async with unit_of_work(runtime) as uow:
        uow.session.add(
            Membership(
                workspace_id=uuid.UUID(workspace_id),
                user_id=uuid.UUID(tokens["user"]["id"]),
                role=role,
                notification_preferences={},
                created_at=uow.now(),
            )
        )
    response = await client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "workspace_id": workspace_id,
        },
    )
    assert response.status_code == 200, response.text
    return bearer(response.json())


async def make_instance_admin(runtime: Runtime, user_id: str) -> None:
    async with unit_of_work(runtime) as uow:
        await uow.session.execute(
            sa.update(User).where(User.id == uuid.UUID(user_id)).values(is_instance_admin=True)
        )


async def queue_ack(runtime: Runtime, workspace_id: str, to: str) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        message = await service.queue_email(
            uow,
            kind="enquiry_acknowledgement",
            to=to,
            subject="We received your enquiry",
            text="Thank you.",
            html="<p>Thank you.</p>",
            workspace_id=uuid.UUID(workspace_id),
            reply_to="studio@example.com",
        )
        return message.id


async def two_workspaces(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    return await signup(client, workspace_name="Studio A"), await signup(
        client, workspace_name="Studio B"
    )


async def test_admin_sees_own_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner_a, owner_b = await two_workspaces(client)
    mine = await queue_ack(runtime, owner_a["workspace"]["id"], "one@example.org")
    theirs = await queue_ack(runtime, owner_b["workspace"]["id"], "two@example.org")

    response = await client.get("/api/v1/outbox", headers=bearer(owner_a))

    assert response.status_code == 200, response.text
    ids = [item["id"] for item in response.json()["items"]]
    assert ids == [str(mine)]
    assert str(theirs) not in ids
    item = response.json()["items"][0]
    assert item["to"] == "one@example.org"
    assert item["status"] == "queued"
    assert "text" not in item


async def test_detail_has_bodies_and_headers(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    email_id = await queue_ack(runtime, owner["workspace"]["id"], "one@example.org")
    await run_jobs(runtime)

    response = await client.get(f"/api/v1/outbox/{email_id}", headers=bearer(owner))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "Thank you."
    assert body["html"] == "<p>Thank you.</p>"
    assert body["from"] == "Frontdesk <frontdesk@localhost>"
    assert body["headers"]["Reply-To"] == "studio@example.com"
    assert body["headers"]["Message-ID"] == body["message_id"]
    assert body["status"] == "sent"
    assert body["transport"] == "outbox"


async def test_other_workspace_message_404(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner_a, owner_b = await two_workspaces(client)
    theirs = await queue_ack(runtime, owner_b["workspace"]["id"], "two@example.org")

    response = await client.get(f"/api/v1/outbox/{theirs}", headers=bearer(owner_a))

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_account_email_not_in_workspace(client: httpx.AsyncClient) -> None:
    owner = await signup(client)

    response = await client.get("/api/v1/outbox", headers=bearer(owner))

    # The sign-up verification email belongs to no workspace.
    assert response.json()["items"] == []


async def test_agent_forbidden(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    agent = await join_as(client, runtime, owner["workspace"]["id"], "agent")

    for path in ("/api/v1/outbox", "/api/v1/jobs?status=dead", f"/api/v1/outbox/{uuid.uuid4()}"):
        response = await client.get(path, headers=agent)
        assert response.status_code == 403, path


async def test_workspace_admin_allowed(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    admin = await join_as(client, runtime, owner["workspace"]["id"], "admin")
    await queue_ack(runtime, owner["workspace"]["id"], "one@example.org")

    response = await client.get("/api/v1/outbox", headers=admin)

    assert response.status_code == 200
    assert len(response.json()["items"]) == 1


async def test_filters_and_pagination(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    workspace_id = owner["workspace"]["id"]
    ids = [await queue_ack(runtime, workspace_id, f"p{i}@example.org") for i in range(3)]
    await queue_ack(runtime, workspace_id, "Target@Example.org")
    headers = bearer(owner)

    by_to = await client.get("/api/v1/outbox?to=target@example.org", headers=headers)
    by_kind = await client.get("/api/v1/outbox?kind=verification", headers=headers)
    first = await client.get("/api/v1/outbox?limit=2&kind=enquiry_acknowledgement", headers=headers)
    second = await client.get(
        f"/api/v1/outbox?limit=2&kind=enquiry_acknowledgement&cursor={first.json()['next_cursor']}",
        headers=headers,
    )
    bad_cursor = await client.get("/api/v1/outbox?cursor=nonsense", headers=headers)

    assert [item["to"] for item in by_to.json()["items"]] == ["Target@Example.org"]
    assert by_kind.json()["items"] == []
    assert len(first.json()["items"]) == 2
    assert second.json()["next_cursor"] is None
    seen = [item["id"] for item in first.json()["items"] + second.json()["items"]]
    assert len(set(seen)) == 4
    assert {str(i) for i in ids} <= set(seen)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"


async def test_instance_admin_sees_all(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner_a, owner_b = await two_workspaces(client)
    theirs = await queue_ack(runtime, owner_b["workspace"]["id"], "two@example.org")
    await make_instance_admin(runtime, owner_a["user"]["id"])
    headers = bearer(owner_a)

    listing = await client.get("/api/v1/admin/outbox", headers=headers)
    detail = await client.get(f"/api/v1/admin/outbox/{theirs}", headers=headers)
    verifications = await client.get("/api/v1/admin/outbox?kind=verification", headers=headers)

    assert listing.status_code == 200
    assert str(theirs) in [item["id"] for item in listing.json()["items"]]
    assert detail.status_code == 200
    assert detail.json()["text"] == "Thank you."
    # Both sign-ups queued a verification email without a workspace.
    assert len(verifications.json()["items"]) == 2
    assert all(item["workspace_id"] is None for item in verifications.json()["items"])


async def test_admin_routes_need_instance_admin(client: httpx.AsyncClient) -> None:
    owner = await signup(client)

    for path in ("/api/v1/admin/outbox", "/api/v1/admin/jobs?status=dead"):
        response = await client.get(path, headers=bearer(owner))
        assert response.status_code == 403, path


async def make_dead_job(runtime: Runtime, workspace_id: str | None) -> uuid.UUID:
    async with unit_of_work(runtime) as uow:
        job = uow.enqueue(
            "email.send",
            {"email_id": str(uuid.uuid4())},
            workspace_id=uuid.UUID(workspace_id) if workspace_id else None,
        )
        job.status = "dead"
        job.attempts = 10
        job.last_error = "SMTP reply 550 5.1.1 Mailbox unavailable"
        job.finished_at = uow.now()
        return job.id


async def test_dead_jobs_per_workspace(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner_a, owner_b = await two_workspaces(client)
    mine = await make_dead_job(runtime, owner_a["workspace"]["id"])
    await make_dead_job(runtime, owner_b["workspace"]["id"])
    await make_dead_job(runtime, None)

    response = await client.get("/api/v1/jobs?status=dead", headers=bearer(owner_a))

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["id"] for item in items] == [str(mine)]
    assert items[0]["last_error"] == "SMTP reply 550 5.1.1 Mailbox unavailable"


async def test_instance_admin_retries_dead_job(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    await make_instance_admin(runtime, owner["user"]["id"])
    dead = await make_dead_job(runtime, None)
    headers = bearer(owner)

    listing = await client.get("/api/v1/admin/jobs?status=dead", headers=headers)
    retried = await client.post(f"/api/v1/admin/jobs/{dead}/retry", headers=headers)
    again = await client.post(f"/api/v1/admin/jobs/{dead}/retry", headers=headers)
    missing = await client.post(f"/api/v1/admin/jobs/{uuid.uuid4()}/retry", headers=headers)

    assert [item["id"] for item in listing.json()["items"]] == [str(dead)]
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    assert retried.json()["attempts"] == 0
    assert again.status_code == 409
    assert again.json()["code"] == "job_not_dead"
    assert missing.status_code == 404
    async with runtime.sessionmaker() as session:
        job = await session.get(Job, dead)
    assert job is not None
    assert job.status == "pending"


async def test_workspace_retry_scoped(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner_a, owner_b = await two_workspaces(client)
    theirs = await make_dead_job(runtime, owner_b["workspace"]["id"])
    mine = await make_dead_job(runtime, owner_a["workspace"]["id"])

    other = await client.post(f"/api/v1/jobs/{theirs}/retry", headers=bearer(owner_a))
    own = await client.post(f"/api/v1/jobs/{mine}/retry", headers=bearer(owner_a))

    assert other.status_code == 404
    assert own.status_code == 200


async def test_retried_email_is_sent(client: httpx.AsyncClient, runtime: Runtime) -> None:
    owner = await signup(client)
    await make_instance_admin(runtime, owner["user"]["id"])
    email_id = await queue_ack(runtime, owner["workspace"]["id"], "one@example.org")
    async with unit_of_work(runtime) as uow:
        await uow.session.execute(
            sa.update(Job)
            .where(Job.name == "email.send", Job.workspace_id.is_not(None))
            .values(status="dead", last_error="earlier failure")
        )
        await uow.session.execute(
            sa.update(EmailMessage).where(EmailMessage.id == email_id).values(status="failed")
        )
    dead = await client.get("/api/v1/jobs?status=dead", headers=bearer(owner))
    job_id = dead.json()["items"][0]["id"]

    await client.post(f"/api/v1/admin/jobs/{job_id}/retry", headers=bearer(owner))
    await run_jobs(runtime)

    message = await client.get(f"/api/v1/outbox/{email_id}", headers=bearer(owner))
    assert message.json()["status"] == "sent"
