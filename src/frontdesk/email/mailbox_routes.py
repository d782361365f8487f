"""The workspace's IMAP mailbox: settings, a connection test and a poll on demand."""

from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.auth.dependencies import AdminDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.email import mailbox
from frontdesk.email.models import EmailMailbox
from frontdesk.email.schemas import MailboxIn, MailboxOut, MailboxTestOut

router = APIRouter(prefix="/email/mailbox", tags=["email mailbox"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "The workspace polls no mailbox."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
    502: {"model": Problem, "description": "The mail server refused or could not be reached."},
}


@router.get("", response_model=MailboxOut, responses=_ERRORS)
async def get_mailbox(uow: UowDep, actor: AdminDep) -> MailboxOut:
    return mailbox.view(uow, await mailbox.get_mailbox(uow, actor.workspace_id))


@router.put("", response_model=MailboxOut, responses=_ERRORS)
async def put_mailbox(uow: UowDep, actor: AdminDep, body: MailboxIn) -> MailboxOut:
    """Set the mailbox to poll; Frontdesk logs in first, and stores nothing if that fails."""
    stored = await mailbox.put_mailbox(uow, workspace_id=actor.workspace_id, data=body)
    return mailbox.view(uow, stored)


@router.delete("", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_mailbox(uow: UowDep, actor: AdminDep) -> Response:
    """Stop polling; mail already received stays."""
    existing = await uow.session.get(EmailMailbox, actor.workspace_id)
    if existing is not None:
        await uow.session.delete(existing)
    return Response(status_code=204)


@router.post("/test", response_model=MailboxTestOut, responses=_ERRORS)
async def test_mailbox(uow: UowDep, actor: AdminDep) -> MailboxTestOut:
    """Log in and count the messages, without reading any."""
    count = await mailbox.check_mailbox(uow, workspace_id=actor.workspace_id)
    return MailboxTestOut(status="ok", messages=count)


@router.post("/poll", status_code=202, response_class=Response, responses=_ERRORS)
async def poll_now(uow: UowDep, actor: AdminDep) -> Response:
    """Queue a poll now instead of waiting for the next scheduled one."""
    await mailbox.get_mailbox(uow, actor.workspace_id)
    uow.enqueue(
        mailbox.POLL_JOB, {"workspace_id": str(actor.workspace_id)}, workspace_id=actor.workspace_id
    )
    return Response(status_code=202)
