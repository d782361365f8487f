"""Workspace, member and invitation endpoints."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from frontdesk.auth.dependencies import AdminDep, AgentDep, OwnerDep, UserDep
from frontdesk.auth.schemas import OpaqueToken, WorkspaceRef, problem_responses
from frontdesk.core.api import ClientIpDep, UowDep, read_only
from frontdesk.workspaces import invitations, service
from frontdesk.workspaces.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationLookup,
    InvitationOut,
    MemberOut,
    MemberUpdate,
    OwnershipTransfer,
    WorkspaceListItem,
    WorkspaceOut,
    WorkspaceUpdate,
)

router = APIRouter(tags=["workspaces"])

_MEMBER_ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get("/workspace", responses=problem_responses(401, 403))
async def get_workspace(actor: AgentDep, uow: UowDep) -> WorkspaceOut:
    """Return the workspace that the access token acts in."""
    return await service.get_workspace(uow, actor)


@router.patch("/workspace", responses=problem_responses(401, 403, 422))
async def update_workspace(body: WorkspaceUpdate, actor: AdminDep, uow: UowDep) -> WorkspaceOut:
    """Change the name, the default country or the Reply-To address (admins and owners)."""
    return await service.update_workspace(uow, actor, body)


@router.delete("/workspace", status_code=204, responses=problem_responses(401, 403))
async def delete_workspace(actor: OwnerDep, uow: UowDep) -> None:
    """Delete the workspace with all its data (owners only). This cannot be undone."""
    await service.delete_workspace(uow, actor)


@router.get("/workspaces", responses=problem_responses(401))
async def list_workspaces(user: UserDep, uow: UowDep) -> list[WorkspaceListItem]:
    """List the caller's workspaces, to switch between them with the refresh grant."""
    return await service.list_workspaces_for_switching(uow, user)


@router.post("/workspace/transfer-ownership", responses=_MEMBER_ERRORS, tags=["members"])
async def transfer_ownership(body: OwnershipTransfer, actor: OwnerDep, uow: UowDep) -> MemberOut:
    """Make another member an owner; the caller becomes an admin. Returns the new owner."""
    return await service.transfer_ownership(uow, actor, body.user_id)


@router.get("/members", responses=problem_responses(401, 403), tags=["members"])
@read_only
async def list_members(actor: AgentDep, uow: UowDep) -> list[MemberOut]:
    return await service.list_members(uow, actor)


@router.patch("/members/{user_id}", responses=_MEMBER_ERRORS, tags=["members"])
async def change_member_role(
    user_id: uuid.UUID, body: MemberUpdate, actor: AdminDep, uow: UowDep
) -> MemberOut:
    """Change a member's role; only owners may change owners or make someone an owner."""
    return await service.change_member_role(uow, actor, user_id, body.role)


@router.delete("/members/{user_id}", status_code=204, responses=_MEMBER_ERRORS, tags=["members"])
async def remove_member(user_id: uuid.UUID, actor: AgentDep, uow: UowDep) -> None:
    """Remove a member (admins and owners), or leave the workspace by passing your own id."""
    await service.remove_member(uow, actor, user_id)


@router.post(
    "/invitations",
    status_code=201,
    responses=problem_responses(401, 403, 409, 422, 429),
    tags=["invitations"],
)
async def create_invitation(body: InvitationCreate, actor: AdminDep, uow: UowDep) -> InvitationOut:
    """Invite an email address; a pending invitation to the same address is replaced."""
    return await invitations.create_invitation(uow, actor, email=body.email, role=body.role)


@router.get("/invitations", responses=problem_responses(401, 403), tags=["invitations"])
async def list_invitations(actor: AdminDep, uow: UowDep) -> list[InvitationOut]:
    """Invitations not yet accepted or revoked, with status pending or expired."""
    return await invitations.list_invitations(uow, actor)


@router.get("/invitations/lookup", responses=problem_responses(400, 422, 429), tags=["invitations"])
async def lookup_invitation(
    token: Annotated[OpaqueToken, Query()], uow: UowDep, ip: ClientIpDep
) -> InvitationLookup:
    """Describe an invitation by its token, so a client can show "join X" before sign-up."""
    return await invitations.lookup_invitation(uow, token=token, client_ip=ip)


@router.post(
    "/invitations/accept",
    responses=problem_responses(400, 401, 403, 409, 422, 429),
    tags=["invitations"],
)
async def accept_invitation(
    body: InvitationAccept, user: UserDep, uow: UowDep, ip: ClientIpDep
) -> WorkspaceRef:
    """Join the invitation's workspace; it must be addressed to the caller's email."""
    return await invitations.accept_invitation(uow, user, token=body.token, client_ip=ip)


@router.post(
    "/invitations/{invitation_id}/resend",
    responses=problem_responses(401, 403, 404, 409, 429),
    tags=["invitations"],
)
async def resend_invitation(
    invitation_id: uuid.UUID, actor: AdminDep, uow: UowDep
) -> InvitationOut:
    """Send the invitation again with a new link and a new expiry; the old link stops working."""
    return await invitations.resend_invitation(uow, actor, invitation_id)


@router.delete(
    "/invitations/{invitation_id}",
    status_code=204,
    responses=problem_responses(401, 403, 404, 409),
    tags=["invitations"],
)
async def revoke_invitation(invitation_id: uuid.UUID, actor: AdminDep, uow: UowDep) -> None:
    await invitations.revoke_invitation(uow, actor, invitation_id)
