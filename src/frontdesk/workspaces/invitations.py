"""Invitations to a workspace: create, list, resend, revoke, look up and accept.

An invitation's token is sent by email and stored only as its SHA-256. Inviting an address
that already has a pending invitation in the workspace replaces it: the old link stops
working and a new one is sent.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog

from frontdesk.auth.dependencies import Actor, UserActor
from frontdesk.auth.models import User
from frontdesk.auth.schemas import WorkspaceRef
from frontdesk.auth.tokens import ExpiredToken, InvalidToken, hash_token
from frontdesk.core.errors import Conflict, Forbidden, NotFound
from frontdesk.core.ids import new_token
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import service as email_service
from frontdesk.workspaces.models import Invitation, Membership, Workspace
from frontdesk.workspaces.schemas import InvitationLookup, InvitationOut
from frontdesk.workspaces.service import add_membership, check_may_manage_role, member_out

log = structlog.get_logger()

# Invitation emails sent (created or resent) by one workspace: enough for onboarding a team,
# too few to use Frontdesk as a mail cannon.
INVITATION_EMAILS_PER_WORKSPACE = Limit("invitations.send.workspace", 100, 24 * 3600)
# Lookups and acceptances per client address: tokens have 256 bits, so this only limits load.
INVITATION_TOKENS_PER_IP = Limit("invitations.token.ip", 60, 300)


class EmailNotVerified(Forbidden):
    code = "email_not_verified"


class InvitationEmailMismatch(Forbidden):
    code = "invitation_email_mismatch"


def invitation_status(invitation: Invitation, now: datetime) -> str:
    return "expired" if invitation.expires_at <= now else "pending"


async def create_invitation(
    uow: UnitOfWork, actor: Actor, *, email: str, role: str
) -> InvitationOut:
    """Invite ``email`` (already lower-cased) to the actor's workspace and email the link."""
    _check_may_invite(actor, role)
    already_member = await uow.session.scalar(
        sa.select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == actor.workspace_id, User.email == email)
    )
    if already_member is not None:
        raise Conflict(
            "This address already belongs to a member of the workspace.", code="already_member"
        )
    await uow.rt.limiter.check((INVITATION_EMAILS_PER_WORKSPACE, str(actor.workspace_id)))

    now = uow.now()
    # Replace a pending invitation to the same address, so only the newest link works.
    await uow.session.execute(
        sa.update(Invitation)
        .where(
            Invitation.workspace_id == actor.workspace_id,
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    token = new_token()
    invitation = Invitation(
        workspace_id=actor.workspace_id,
        email=email,
        role=role,
        token_hash=hash_token(token),
        invited_by_id=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=uow.settings.invitation_ttl_seconds),
    )
    uow.session.add(invitation)
    await uow.session.flush()
    await _send_invitation_email(uow, actor, invitation, token)
    log.info(
        "invitation.created",
        workspace_id=str(actor.workspace_id),
        invitation_id=str(invitation.id),
        role=role,
    )
    return _invitation_out(invitation, now)


async def list_invitations(uow: UnitOfWork, actor: Actor) -> list[InvitationOut]:
    """List the invitations neither accepted nor revoked, newest first, expired ones included."""
    invitations = await uow.session.scalars(
        sa.select(Invitation)
        .where(
            Invitation.workspace_id == actor.workspace_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    )
    now = uow.now()
    return [_invitation_out(invitation, now) for invitation in invitations]


async def resend_invitation(
    uow: UnitOfWork, actor: Actor, invitation_id: uuid.UUID
) -> InvitationOut:
    """Send a new link with a new expiry; the previous link stops working."""
    invitation = await _get_open_invitation(uow, actor, invitation_id)
    _check_may_invite(actor, invitation.role)
    await uow.rt.limiter.check((INVITATION_EMAILS_PER_WORKSPACE, str(actor.workspace_id)))

    now = uow.now()
    token = new_token()
    invitation.token_hash = hash_token(token)
    invitation.expires_at = now + timedelta(seconds=uow.settings.invitation_ttl_seconds)
    await uow.session.flush()
    await _send_invitation_email(uow, actor, invitation, token)
    log.info(
        "invitation.resent", workspace_id=str(actor.workspace_id), invitation_id=str(invitation.id)
    )
    return _invitation_out(invitation, now)


async def revoke_invitation(uow: UnitOfWork, actor: Actor, invitation_id: uuid.UUID) -> None:
    invitation = await _get_open_invitation(uow, actor, invitation_id)
    check_may_manage_role(actor, invitation.role)
    invitation.revoked_at = uow.now()
    await uow.session.flush()
    log.info(
        "invitation.revoked", workspace_id=str(actor.workspace_id), invitation_id=str(invitation.id)
    )


async def lookup_invitation(uow: UnitOfWork, *, token: str, client_ip: str) -> InvitationLookup:
    """Describe a usable invitation so that a client can show "join X" before sign-up."""
    await uow.rt.limiter.check((INVITATION_TOKENS_PER_IP, client_ip))
    invitation = await _find_usable_invitation(uow, token)
    workspace_name = await uow.session.scalar(
        sa.select(Workspace.name).where(Workspace.id == invitation.workspace_id)
    )
    return InvitationLookup(
        workspace_name=workspace_name or "",
        email=invitation.email,
        role=invitation.role,  # type: ignore[arg-type]
        expires_at=invitation.expires_at,
    )


async def accept_invitation(
    uow: UnitOfWork, user: UserActor, *, token: str, client_ip: str
) -> WorkspaceRef:
    """Make the logged-in user a member; the invitation must be addressed to their email."""
    await uow.rt.limiter.check((INVITATION_TOKENS_PER_IP, client_ip))
    return await join_by_invitation(uow, token=token, user_id=user.user_id, email=user.email)


async def join_by_invitation(
    uow: UnitOfWork, *, token: str, user_id: uuid.UUID, email: str
) -> WorkspaceRef:
    """Redeem an invitation for ``user_id``, whose address ``email`` it must be sent to.

    The user's email counts as verified afterwards: the token reached that mailbox.
    """
    invitation = await _find_usable_invitation(uow, token, lock=True)
    if invitation.email != email.lower():
        raise InvitationEmailMismatch(
            "This invitation was sent to another email address; sign up or log in with that "
            "address to accept it."
        )
    existing = await uow.session.get(Membership, (invitation.workspace_id, user_id))
    if existing is not None:
        raise Conflict("You are already a member of this workspace.", code="already_member")

    user = await uow.session.get(User, user_id)
    workspace = await uow.session.get(Workspace, invitation.workspace_id)
    if user is None or workspace is None:
        raise NotFound("The account or the workspace of this invitation no longer exists.")

    now = uow.now()
    invitation.accepted_at = now
    membership = add_membership(
        uow, workspace_id=workspace.id, user_id=user_id, role=invitation.role
    )
    if user.email_verified_at is None:
        user.email_verified_at = now
        user.updated_at = now
    await uow.session.flush()

    uow.record_event(
        "member.added",
        member_out(membership, user).model_dump(mode="json"),
        workspace_id=workspace.id,
    )
    log.info(
        "invitation.accepted",
        workspace_id=str(workspace.id),
        invitation_id=str(invitation.id),
        user_id=str(user_id),
    )
    return WorkspaceRef(id=workspace.id, name=workspace.name, role=membership.role)


def _check_may_invite(actor: Actor, role: str) -> None:
    if not actor.email_verified:
        raise EmailNotVerified(
            "Verify your email address before inviting members: open the link we sent, or "
            "request a new one with POST /api/v1/auth/verify-email/resend."
        )
    check_may_manage_role(actor, role)


async def _get_open_invitation(
    uow: UnitOfWork, actor: Actor, invitation_id: uuid.UUID
) -> Invitation:
    """Load an invitation of the actor's workspace that was not revoked; others are 404."""
    invitation = await uow.session.scalar(
        sa.select(Invitation).where(
            Invitation.id == invitation_id,
            Invitation.workspace_id == actor.workspace_id,
            Invitation.revoked_at.is_(None),
        )
    )
    if invitation is None:
        raise NotFound("No open invitation with this id in this workspace.")
    if invitation.accepted_at is not None:
        raise Conflict("This invitation was already accepted.", code="invitation_accepted")
    return invitation


async def _find_usable_invitation(uow: UnitOfWork, token: str, *, lock: bool = False) -> Invitation:
    query = sa.select(Invitation).where(Invitation.token_hash == hash_token(token))
    if lock:
        query = query.with_for_update()
    invitation = await uow.session.scalar(query)
    if (
        invitation is None
        or invitation.revoked_at is not None
        or invitation.accepted_at is not None
    ):
        raise InvalidToken(
            "This invitation link is invalid or was already used or revoked; ask for a new one."
        )
    if invitation.expires_at <= uow.now():
        raise ExpiredToken("This invitation has expired; ask the workspace admin for a new one.")
    return invitation


async def _send_invitation_email(
    uow: UnitOfWork, actor: Actor, invitation: Invitation, token: str
) -> None:
    row = (
        await uow.session.execute(
            sa.select(Workspace.name, User.full_name)
            .select_from(Workspace)
            .join(User, User.id == actor.user_id)
            .where(Workspace.id == invitation.workspace_id)
        )
    ).one()
    await email_service.send_invitation_email(
        uow,
        to=invitation.email,
        workspace_id=invitation.workspace_id,
        workspace_name=row.name,
        inviter_name=row.full_name,
        role=invitation.role,
        token=token,
    )


def _invitation_out(invitation: Invitation, now: datetime) -> InvitationOut:
    return InvitationOut(
        id=invitation.id,
        email=invitation.email,
        role=invitation.role,  # type: ignore[arg-type]
        status=invitation_status(invitation, now),  # type: ignore[arg-type]
        invited_by_id=invitation.invited_by_id,
        created_at=invitation.created_at,
        expires_at=invitation.expires_at,
    )
