"""Workspaces and their members with roles: the use cases behind the workspace endpoints.

Role rules: an owner may do everything; an admin manages members but cannot change, remove or
create owners; an agent manages no one. A workspace always keeps at least one owner. Every
change to memberships first locks the workspace row, so two concurrent demotions cannot both
see "another owner remains" and leave the workspace without one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.auth.dependencies import Actor, UserActor
from frontdesk.auth.models import AuthSession, User
from frontdesk.auth.schemas import WorkspaceRef
from frontdesk.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.enquiries.service import unassign_member
from frontdesk.workspaces.models import Membership, Workspace
from frontdesk.workspaces.schemas import (
    MemberOut,
    WorkspaceListItem,
    WorkspaceOut,
    WorkspaceUpdate,
)

log = structlog.get_logger()


class OwnerRequired(Forbidden):
    code = "owner_required"


class LastOwner(Conflict):
    code = "last_owner"


def check_may_manage_role(actor: Actor, *roles: str | None) -> None:
    """Raise unless the actor may act on a member or invitation with any of ``roles``."""
    if "owner" in roles and actor.role != "owner":
        raise OwnerRequired("Only an owner can change, remove or invite owners.")


# --- Workspaces ---------------------------------------------------------------------------


async def create_workspace(
    uow: UnitOfWork,
    *,
    name: str,
    default_country: str,
    owner_id: uuid.UUID,
    reply_to_email: str | None = None,
) -> Workspace:
    """Create a workspace with ``owner_id`` as its first owner.

    ``reply_to_email`` becomes the Reply-To of customer emails; sign-up passes the owner's
    address so that customers' replies reach a person from the first enquiry on.
    """
    now = uow.now()
    workspace = Workspace(
        name=name,
        default_country=default_country,
        reply_to_email=reply_to_email,
        settings={},
        created_at=now,
        updated_at=now,
    )
    uow.session.add(workspace)
    await uow.session.flush()
    add_membership(uow, workspace_id=workspace.id, user_id=owner_id, role="owner")
    await uow.session.flush()
    log.info("workspace.created", workspace_id=str(workspace.id))
    return workspace


def add_membership(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, user_id: uuid.UUID, role: str
) -> Membership:
    membership = Membership(
        workspace_id=workspace_id,
        user_id=user_id,
        role=role,
        notification_preferences={},
        created_at=uow.now(),
    )
    uow.session.add(membership)
    return membership


async def get_workspace(uow: UnitOfWork, actor: Actor) -> WorkspaceOut:
    workspace = await _load_workspace(uow.session, actor.workspace_id)
    return _workspace_out(workspace, actor.role)


async def update_workspace(uow: UnitOfWork, actor: Actor, changes: WorkspaceUpdate) -> WorkspaceOut:
    """Apply the fields present in ``changes``; ``reply_to_email: null`` clears that address."""
    workspace = await _load_workspace(uow.session, actor.workspace_id)
    fields = changes.model_fields_set
    if not fields:
        return _workspace_out(workspace, actor.role)
    for required in ("name", "default_country"):
        if required in fields and getattr(changes, required) is None:
            raise ValidationFailed(required, "This field cannot be null.", "null")
    if "name" in fields and changes.name is not None:
        workspace.name = changes.name
    if "default_country" in fields and changes.default_country is not None:
        workspace.default_country = changes.default_country
    if "reply_to_email" in fields:
        workspace.reply_to_email = changes.reply_to_email
    workspace.updated_at = uow.now()
    await uow.session.flush()

    result = _workspace_out(workspace, actor.role)
    # Every member receives the event, so it leaves out the role, which is the caller's own.
    event_data = result.model_dump(mode="json", exclude={"role"})
    uow.record_event("workspace.updated", event_data, workspace_id=workspace.id)
    return result


async def delete_workspace(uow: UnitOfWork, actor: Actor) -> None:
    """Delete the actor's workspace; the database cascades to everything it owns."""
    workspace_id = actor.workspace_id
    await _lock_workspace(uow.session, workspace_id)
    member_ids = (
        await uow.session.scalars(
            sa.select(Membership.user_id).where(Membership.workspace_id == workspace_id)
        )
    ).all()
    await uow.session.execute(sa.delete(Workspace).where(Workspace.id == workspace_id))
    # Sessions and users that pointed at it fall back to another workspace at the next refresh.
    await uow.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.workspace_id == workspace_id)
        .values(workspace_id=None)
    )
    await uow.session.execute(
        sa.update(User).where(User.last_workspace_id == workspace_id).values(last_workspace_id=None)
    )
    for user_id in member_ids:
        uow.record_event(
            "internal.member_removed", {"user_id": str(user_id)}, workspace_id=workspace_id
        )
    log.info("workspace.deleted", workspace_id=str(workspace_id), user_id=str(actor.user_id))


async def list_user_workspaces(session: AsyncSession, user_id: uuid.UUID) -> list[WorkspaceRef]:
    """List the user's workspaces with their role, oldest membership first."""
    rows = await session.execute(
        sa.select(Workspace.id, Workspace.name, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Workspace.id)
    )
    return [WorkspaceRef(id=row.id, name=row.name, role=row.role) for row in rows]


async def list_workspaces_for_switching(
    uow: UnitOfWork, user: UserActor
) -> list[WorkspaceListItem]:
    workspaces = await list_user_workspaces(uow.session, user.user_id)
    return [
        WorkspaceListItem(
            id=workspace.id,
            name=workspace.name,
            role=workspace.role,  # type: ignore[arg-type]
            current=workspace.id == user.workspace_id,
        )
        for workspace in workspaces
    ]


async def choose_workspace(
    session: AsyncSession, user_id: uuid.UUID, preferred: Sequence[uuid.UUID | None]
) -> WorkspaceRef | None:
    """Pick the first of ``preferred`` that the user belongs to, else their oldest membership."""
    workspaces = await list_user_workspaces(session, user_id)
    by_id = {workspace.id: workspace for workspace in workspaces}
    for workspace_id in preferred:
        if workspace_id in by_id:
            return by_id[workspace_id]
    return workspaces[0] if workspaces else None


async def _load_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace:
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None:
        raise NotFound("The workspace no longer exists.")
    return workspace


async def _lock_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Serialize membership changes of one workspace (a no-op on SQLite, which has one writer)."""
    await session.execute(
        sa.select(Workspace.id).where(Workspace.id == workspace_id).with_for_update()
    )


def _workspace_out(workspace: Workspace, role: str) -> WorkspaceOut:
    return WorkspaceOut(
        id=workspace.id,
        name=workspace.name,
        default_country=workspace.default_country,
        reply_to_email=workspace.reply_to_email,
        created_at=workspace.created_at,
        role=role,  # type: ignore[arg-type]
    )


# --- Members ------------------------------------------------------------------------------


async def list_members(uow: UnitOfWork, actor: Actor) -> list[MemberOut]:
    rows = await uow.session.execute(
        sa.select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == actor.workspace_id)
        .order_by(Membership.created_at, User.id)
    )
    return [member_out(membership, user) for membership, user in rows]


async def change_member_role(
    uow: UnitOfWork, actor: Actor, user_id: uuid.UUID, role: str
) -> MemberOut:
    await _lock_workspace(uow.session, actor.workspace_id)
    membership, user = await _get_member(uow.session, actor.workspace_id, user_id)
    check_may_manage_role(actor, membership.role, role)
    if membership.role == role:
        return member_out(membership, user)
    if membership.role == "owner":
        await _ensure_another_owner(uow.session, actor.workspace_id)

    membership.role = role
    await uow.session.flush()
    result = member_out(membership, user)
    uow.record_event(
        "member.updated", result.model_dump(mode="json"), workspace_id=actor.workspace_id
    )
    log.info(
        "member.role_changed",
        workspace_id=str(actor.workspace_id),
        user_id=str(user_id),
        role=role,
    )
    return result


async def remove_member(uow: UnitOfWork, actor: Actor, user_id: uuid.UUID) -> None:
    """Remove a member, or let the actor leave when ``user_id`` is their own id."""
    await _lock_workspace(uow.session, actor.workspace_id)
    membership, user = await _get_member(uow.session, actor.workspace_id, user_id)
    if user_id != actor.user_id:
        # The route admits any member so that agents can leave; removing others needs admin.
        if not actor.has_role("admin"):
            raise Forbidden(
                "Only admins and owners can remove other members; any member can remove "
                "themselves to leave the workspace."
            )
        check_may_manage_role(actor, membership.role)
    if membership.role == "owner":
        await _ensure_another_owner(uow.session, actor.workspace_id)

    removed = member_out(membership, user)
    await uow.session.delete(membership)
    await uow.session.flush()
    await _move_reply_to_from(uow.session, actor.workspace_id, user.email)
    await unassign_member(
        uow, workspace_id=actor.workspace_id, user_id=user_id, actor_id=actor.user_id
    )
    uow.record_event(
        "member.removed", removed.model_dump(mode="json"), workspace_id=actor.workspace_id
    )
    uow.record_event(
        "internal.member_removed", {"user_id": str(user_id)}, workspace_id=actor.workspace_id
    )
    log.info("member.removed", workspace_id=str(actor.workspace_id), user_id=str(user_id))


async def transfer_ownership(uow: UnitOfWork, actor: Actor, user_id: uuid.UUID) -> MemberOut:
    """Make ``user_id`` an owner and the acting owner an admin."""
    if user_id == actor.user_id:
        raise ValidationFailed(
            "user_id", "Choose another member: you already own this workspace.", "self_transfer"
        )
    await _lock_workspace(uow.session, actor.workspace_id)
    target, target_user = await _get_member(uow.session, actor.workspace_id, user_id)
    own, own_user = await _get_member(uow.session, actor.workspace_id, actor.user_id)
    target.role = "owner"
    own.role = "admin"
    await uow.session.flush()

    result = member_out(target, target_user)
    for changed in (result, member_out(own, own_user)):
        uow.record_event(
            "member.updated", changed.model_dump(mode="json"), workspace_id=actor.workspace_id
        )
    log.info(
        "workspace.ownership_transferred",
        workspace_id=str(actor.workspace_id),
        from_user_id=str(actor.user_id),
        to_user_id=str(user_id),
    )
    return result


async def _get_member(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, User]:
    """Load a member of this workspace; anyone else, in another workspace or none, is 404."""
    row = (
        await session.execute(
            sa.select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
        )
    ).first()
    if row is None:
        raise NotFound("No member with this user id in this workspace.")
    return row[0], row[1]


async def _move_reply_to_from(
    session: AsyncSession, workspace_id: uuid.UUID, email: str | None
) -> None:
    """Give customer replies to the longest-serving owner when they went to a member who left.

    Sign-up sets the Reply-To to the owner's own address, and customers' replies should stop
    going to that person once they left. The caller holds the workspace lock.
    """
    workspace = await session.get(Workspace, workspace_id)
    if workspace is None or email is None:
        return
    if (workspace.reply_to_email or "").lower() != email.lower():
        return
    owner_email = await session.scalar(
        sa.select(User.email)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.workspace_id == workspace_id, Membership.role == "owner")
        .order_by(Membership.created_at, Membership.user_id)
        .limit(1)
    )
    workspace.reply_to_email = owner_email
    log.info("workspace.reply_to_moved", workspace_id=str(workspace_id))


async def _ensure_another_owner(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Raise when the workspace has a single owner. The caller holds the workspace lock."""
    owners = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Membership)
        .where(Membership.workspace_id == workspace_id, Membership.role == "owner")
    )
    if (owners or 0) <= 1:
        raise LastOwner(
            "A workspace needs at least one owner: make another member an owner first, "
            "or delete the workspace."
        )


def member_out(membership: Membership, user: User) -> MemberOut:
    return MemberOut(
        user_id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=membership.role,  # type: ignore[arg-type]
        email_verified=user.email_verified_at is not None,
        joined_at=membership.created_at,
    )
