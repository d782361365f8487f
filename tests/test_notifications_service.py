"""notify_enquiry_created and notify_enquiry_assigned store, publish and email per member."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from factories import cursor_listener
from frontdesk.auth.models import User
from frontdesk.core.models import Event, Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry
from frontdesk.notifications import service
from frontdesk.notifications.models import Notification
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership, Workspace


@dataclass
class Team:
    workspace_id: uuid.UUID
    owner: uuid.UUID
    agent: uuid.UUID
    admin: uuid.UUID


async def make_team(runtime: Runtime, *, opted_in: set[str] = frozenset()) -> Team:  # type: ignore[assignment]
    """A workspace with an owner, an agent and an admin; ``opted_in`` roles get new-enquiry email."""
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        workspace = Workspace(name="Atelier Nord", created_at=now, updated_at=now, settings={})
        uow.session.add(workspace)
        await uow.session.flush()
        ids: dict[str, uuid.UUID] = {}
        for role in ("owner", "agent", "admin"):
            user = User(
                email=f"{role}-{uuid.uuid4().hex[:6]}@example.com",
                password_hash="x",
                full_name=f"{role.title()} Person",
                created_at=now,
                updated_at=now,
            )
            uow.session.add(user)
            await uow.session.flush()
            preferences = {"enquiry.created": {"email": True}} if role in opted_in else {}
            uow.session.add(
                Membership(
                    workspace_id=workspace.id,
                    user_id=user.id,
                    role=role,
                    notification_preferences=preferences,
                    created_at=now,
                )
            )
            ids[role] = user.id
        return Team(workspace.id, ids["owner"], ids["agent"], ids["admin"])


async def make_enquiry(runtime: Runtime, workspace_id: uuid.UUID) -> dict[str, Any]:
    """Insert an enquiry row (email rows reference it) and return its API-like dict."""
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        enquiry = Enquiry(
            workspace_id=workspace_id,
            source="form",
            status="new",
            answers={},
            consent={},
            source_details={},
            search_text="",
            created_at=now,
            updated_at=now,
        )
        uow.session.add(enquiry)
        await uow.session.flush()
        return enquiry_dict(enquiry.id)


def enquiry_dict(enquiry_id: uuid.UUID | None = None) -> dict[str, Any]:
    return {
        "id": str(enquiry_id or uuid.uuid4()),
        "status": "new",
        "source": "form",
        "subject": "Wedding photos",
        "answers": {"message": "<b>Hi</b> & hello"},
        "contact": {"id": str(uuid.uuid4()), "name": "Camille", "email": "c@example.org"},
        "assignee": None,
        "tags": [],
        "created_at": "2026-01-01T10:00:00Z",
    }


async def rows(runtime: Runtime, model: Any) -> list[Any]:
    async with runtime.sessionmaker() as session:
        return list((await session.scalars(sa.select(model))).all())


async def test_created_notifies_each_member(runtime: Runtime) -> None:
    team = await make_team(runtime)
    enquiry = enquiry_dict()

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_created(
            uow, workspace_id=team.workspace_id, enquiry=enquiry, exclude_user_id=team.owner
        )

    notifications = await rows(runtime, Notification)
    assert {n.user_id for n in notifications} == {team.agent, team.admin}
    assert all(n.type == "enquiry.created" for n in notifications)
    assert notifications[0].data["enquiry"]["id"] == enquiry["id"]
    assert "answers" not in notifications[0].data["enquiry"]
    events = [e for e in await rows(runtime, Event) if e.name == "notification.created"]
    assert {e.user_id for e in events} == {team.agent, team.admin}
    assert all(e.workspace_id == team.workspace_id for e in events)
    by_user = {n.user_id: str(n.id) for n in notifications}
    assert {e.data["id"] for e in events} == set(by_user.values())
    # Nobody opted in, so no email is queued.
    assert await rows(runtime, EmailMessage) == []


async def test_opted_in_member_gets_email(runtime: Runtime) -> None:
    team = await make_team(runtime, opted_in={"agent"})

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_created(
            uow,
            workspace_id=team.workspace_id,
            enquiry=await make_enquiry(runtime, team.workspace_id),
        )

    messages = await rows(runtime, EmailMessage)
    assert len(messages) == 1
    assert messages[0].kind == "new_enquiry"
    assert messages[0].to_address.startswith("agent-")
    assert messages[0].workspace_id == team.workspace_id
    assert "&lt;b&gt;Hi&lt;/b&gt; &amp; hello" in messages[0].html_body
    assert "<b>Hi</b> & hello" in messages[0].text_body
    assert "Agent Person" in messages[0].text_body
    assert len([j for j in await rows(runtime, Job) if j.name == "email.send"]) == 1
    assert len(await rows(runtime, Notification)) == 3


async def test_assigned_notifies_assignee(runtime: Runtime) -> None:
    team = await make_team(runtime)

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_assigned(
            uow,
            workspace_id=team.workspace_id,
            enquiry=await make_enquiry(runtime, team.workspace_id),
            assignee_id=team.agent,
            actor_id=team.owner,
        )

    notifications = await rows(runtime, Notification)
    assert [(n.user_id, n.type) for n in notifications] == [(team.agent, "enquiry.assigned")]
    assert notifications[0].data["actor_id"] == str(team.owner)
    events = [e for e in await rows(runtime, Event) if e.name == "notification.created"]
    assert [e.user_id for e in events] == [team.agent]
    # Email for assignments is on by default.
    messages = await rows(runtime, EmailMessage)
    assert [m.kind for m in messages] == ["enquiry_assigned"]
    assert messages[0].to_address.startswith("agent-")


async def test_self_assignment_notifies_nobody(runtime: Runtime) -> None:
    team = await make_team(runtime)

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_assigned(
            uow,
            workspace_id=team.workspace_id,
            enquiry=enquiry_dict(),
            assignee_id=team.agent,
            actor_id=team.agent,
        )

    assert await rows(runtime, Notification) == []
    assert await rows(runtime, EmailMessage) == []


async def test_assigned_email_can_be_off(runtime: Runtime) -> None:
    team = await make_team(runtime)
    async with unit_of_work(runtime) as uow:
        await service.update_preferences(
            uow,
            workspace_id=team.workspace_id,
            user_id=team.agent,
            body={"enquiry.assigned": {"email": False}},
        )

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_assigned(
            uow,
            workspace_id=team.workspace_id,
            enquiry=enquiry_dict(),
            assignee_id=team.agent,
            actor_id=None,
        )

    assert len(await rows(runtime, Notification)) == 1
    assert await rows(runtime, EmailMessage) == []


async def test_non_member_assignee_ignored(runtime: Runtime) -> None:
    team = await make_team(runtime)

    async with unit_of_work(runtime) as uow:
        await service.notify_enquiry_assigned(
            uow,
            workspace_id=team.workspace_id,
            enquiry=enquiry_dict(),
            assignee_id=uuid.uuid4(),
            actor_id=team.owner,
        )

    assert await rows(runtime, Notification) == []


async def test_created_query_count(runtime: Runtime) -> None:
    team = await make_team(runtime, opted_in={"owner", "agent", "admin"})
    enquiry = await make_enquiry(runtime, team.workspace_id)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    async with unit_of_work(runtime) as uow:
        # Only the statements of the call count, not those of the commit and event publishing.
        with cursor_listener(runtime, record):
            await service.notify_enquiry_created(
                uow, workspace_id=team.workspace_id, enquiry=enquiry
            )

    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    # The members with their users and the workspace name, and the workspace's email provider
    # settings, however many members there are.
    assert len(selects) == 2, "\n\n".join(selects)
    assert len(await rows(runtime, EmailMessage)) == 3
