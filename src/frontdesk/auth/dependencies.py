"""Who is calling: the authenticated actor and the role checks of workspace endpoints."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from frontdesk.auth.models import AuthSession, User
from frontdesk.auth.tokens import ExpiredAccessToken, InvalidAccessToken, decode_access_token
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Forbidden, Unauthorized
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership

ROLE_RANK = {"agent": 1, "admin": 2, "owner": 3}
ROLES = tuple(ROLE_RANK)

# The login session, its user and the user's membership of the token's workspace, in one
# round trip. The outer joins keep the session row when the user or membership is gone.
_LOGIN_QUERY = (
    sa.select(
        AuthSession.user_id,
        AuthSession.expires_at,
        AuthSession.revoked_at,
        User.email,
        User.full_name,
        User.email_verified_at,
        User.is_instance_admin,
        Membership.role,
    )
    .select_from(AuthSession)
    .outerjoin(User, User.id == AuthSession.user_id)
    .outerjoin(
        Membership,
        sa.and_(
            Membership.user_id == AuthSession.user_id,
            Membership.workspace_id == sa.bindparam("workspace_id", type_=sa.Uuid),
        ),
    )
    .where(AuthSession.id == sa.bindparam("session_id", type_=sa.Uuid))
)

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/token")


@dataclass(frozen=True)
class Actor:
    """The authenticated caller, acting in the workspace that the access token names."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID
    role: str
    email: str
    email_verified: bool
    is_instance_admin: bool
    full_name: str | None = None

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[minimum]


@dataclass(frozen=True)
class UserActor:
    """An authenticated user, whatever workspace (if any) the token names."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    workspace_id: uuid.UUID | None
    email: str
    email_verified: bool
    is_instance_admin: bool
    full_name: str | None = None
    session_expires_at: datetime | None = None


async def resolve_token(
    session: AsyncSession, runtime: Runtime, token: str
) -> tuple[UserActor, str | None]:
    """Check an access token and its login session; return the user and their role, if any.

    The session row is read on every call so that a logout or a removal from the workspace
    takes effect at once rather than when the access token expires.
    """
    now = runtime.clock.now()
    try:
        claims = decode_access_token(runtime.secrets.secret_key, token, now=now)
    except ExpiredAccessToken as exc:
        raise Unauthorized(
            "The access token has expired; get a new one with the refresh_token grant of "
            "POST /api/v1/auth/token."
        ) from exc
    except InvalidAccessToken as exc:
        raise Unauthorized(
            "The access token is invalid; log in with POST /api/v1/auth/token to get one."
        ) from exc
    # On the session's connection, because the ORM's execution path adds nothing to a Core
    # query and cost about a fifth of this lookup (measured in process on SQLite).
    connection = await session.connection()
    row = (
        await connection.execute(
            _LOGIN_QUERY,
            {"session_id": claims.session_id, "workspace_id": claims.workspace_id},
        )
    ).one_or_none()
    if (
        row is None
        or row.revoked_at is not None
        or row.expires_at <= now
        or row.user_id != claims.user_id
    ):
        raise Unauthorized("The session has ended; log in again.")
    if row.email is None:
        raise Unauthorized("The account no longer exists.")
    role = row.role if claims.workspace_id is not None else None
    actor = UserActor(
        user_id=row.user_id,
        session_id=claims.session_id,
        workspace_id=claims.workspace_id,
        email=row.email,
        email_verified=row.email_verified_at is not None,
        is_instance_admin=bool(row.is_instance_admin),
        full_name=row.full_name,
        session_expires_at=row.expires_at,
    )
    return actor, role


async def current_user(
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserActor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    actor, _role = await resolve_token(uow.session, uow.rt, credentials.credentials)
    return actor


async def current_actor(
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    user, role = await resolve_token(uow.session, uow.rt, credentials.credentials)
    if user.workspace_id is None or role is None:
        raise Forbidden(
            "You are not a member of the token's workspace; switch workspace with "
            "POST /api/v1/auth/token (grant_type refresh_token, workspace_id).",
            code="no_workspace",
        )
    return Actor(
        user_id=user.user_id,
        session_id=user.session_id,
        workspace_id=user.workspace_id,
        role=role,
        email=user.email,
        email_verified=user.email_verified,
        is_instance_admin=user.is_instance_admin,
        full_name=user.full_name,
    )


def require_role(minimum: str) -> Callable[..., Awaitable[Actor]]:
    """Build a dependency that admits members with at least the ``minimum`` role."""

    async def dependency(actor: Annotated[Actor, Depends(current_actor)]) -> Actor:
        if not actor.has_role(minimum):
            raise Forbidden(
                f"This action needs the '{minimum}' role or higher; yours is '{actor.role}'."
            )
        return actor

    dependency.min_role = minimum  # type: ignore[attr-defined]  # read by the route matrix test
    return dependency


async def require_instance_admin(user: Annotated[UserActor, Depends(current_user)]) -> UserActor:
    if not user.is_instance_admin:
        raise Forbidden("This action needs an instance administrator.")
    return user


ActorDep = Annotated[Actor, Depends(current_actor)]
AgentDep = Annotated[Actor, Depends(require_role("agent"))]
AdminDep = Annotated[Actor, Depends(require_role("admin"))]
OwnerDep = Annotated[Actor, Depends(require_role("owner"))]
UserDep = Annotated[UserActor, Depends(current_user)]
InstanceAdminDep = Annotated[UserActor, Depends(require_instance_admin)]
