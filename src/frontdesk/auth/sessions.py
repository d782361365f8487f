"""Login sessions and their tokens: the password and refresh grants, listing, revoking.

A login session (``AuthSession``) is one signed-in device. It acts in one workspace at a
time, which its access tokens name. Its refresh tokens are stored as SHA-256 hashes and
rotate on every use. Using one that was already exchanged ends the session, because two
parties hold the token, unless it happens within a short grace period: clients that refresh
from two tabs at once get a second new token instead.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
import structlog

from frontdesk.auth.dependencies import UserActor
from frontdesk.auth.models import AuthSession, RefreshToken, User
from frontdesk.auth.schemas import TokenRequest, WorkspaceRef
from frontdesk.auth.tokens import hash_token, issue_access_token
from frontdesk.core.errors import InvalidGrant, NotFound, ValidationFailed
from frontdesk.core.ids import new_token, uuid7
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.workspaces import service as workspaces

log = structlog.get_logger()

# Rate limits (max requests, window in seconds). Login counts every attempt, before the
# password is checked, so an unknown email is limited exactly like a known one.
LOGINS_PER_ACCOUNT_AND_IP = Limit("auth.login.account_ip", 10, 300)
LOGINS_PER_IP = Limit("auth.login.ip", 30, 300)
# The ceiling that still applies when every attempt comes from another address.
LOGINS_PER_ACCOUNT = Limit("auth.login.account", 100, 3600)
REFRESHES_PER_IP = Limit("auth.refresh.ip", 300, 300)


@dataclass(frozen=True)
class ClientInfo:
    """The client address and User-Agent of a request, recorded on the sessions it starts."""

    ip: str
    user_agent: str | None


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    user: User
    workspace: WorkspaceRef | None


async def find_user_by_email(uow: UnitOfWork, email: str) -> User | None:
    return await uow.session.scalar(sa.select(User).where(User.email == email.strip().lower()))


# --- Token grants ---------------------------------------------------------------------------


async def grant_tokens(uow: UnitOfWork, body: TokenRequest, client: ClientInfo) -> IssuedTokens:
    if body.grant_type == "password":
        if body.email is None:
            raise ValidationFailed("email", "This field is required.", "missing")
        if body.password is None:
            raise ValidationFailed("password", "This field is required.", "missing")
        return await log_in(uow, email=body.email, password=body.password, client=client)
    if body.refresh_token is None:
        raise ValidationFailed("refresh_token", "This field is required.", "missing")
    return await refresh(
        uow, refresh_token=body.refresh_token, workspace_id=body.workspace_id, client=client
    )


async def log_in(uow: UnitOfWork, *, email: str, password: str, client: ClientInfo) -> IssuedTokens:
    """Check the password and start a session in the workspace the user last used.

    A wrong password and an unknown email raise the same error after the same argon2 work.
    """
    account = account_key(email)
    await uow.rt.limiter.check(
        (LOGINS_PER_ACCOUNT_AND_IP, f"{account}:{client.ip}"),
        (LOGINS_PER_IP, client.ip),
        (LOGINS_PER_ACCOUNT, account),
    )
    user = await find_user_by_email(uow, email)
    hasher = uow.rt.hasher
    if not await hasher.verify(user.password_hash if user else None, password) or user is None:
        log.info("auth.login_failed")
        raise InvalidGrant("The email address or the password is incorrect.")

    if hasher.needs_rehash(user.password_hash):
        # The argon2 settings changed since this hash was made; upgrade it while we have the password.
        user.password_hash = await hasher.hash(password)
    workspace = await workspaces.choose_workspace(uow.session, user.id, [user.last_workspace_id])
    user.last_workspace_id = workspace.id if workspace else None
    login = start_session(uow, user, user.last_workspace_id, client)
    await uow.session.flush()
    log.info("auth.logged_in", user_id=str(user.id), session_id=str(login.id))
    return await issue_tokens(uow, user, login, workspace)


async def refresh(
    uow: UnitOfWork,
    *,
    refresh_token: str,
    workspace_id: uuid.UUID | None,
    client: ClientInfo,
) -> IssuedTokens:
    """Exchange a refresh token for a new pair, optionally switching the session's workspace."""
    await uow.rt.limiter.check((REFRESHES_PER_IP, client.ip))
    now = uow.now()
    # The row lock makes concurrent uses of one token take turns, so that the second one
    # reads the first one's used_at (Postgres; SQLite has a single writer).
    token = await uow.session.scalar(
        sa.select(RefreshToken)
        .where(RefreshToken.token_hash == hash_token(refresh_token))
        .with_for_update()
    )
    if token is None:
        raise InvalidGrant("The refresh token is invalid; log in again.")
    login = await uow.session.scalar(
        sa.select(AuthSession).where(AuthSession.id == token.session_id).with_for_update()
    )
    if login is None or login.revoked_at is not None or login.expires_at <= now:
        raise InvalidGrant("The session has ended; log in again.")

    grace = timedelta(seconds=uow.settings.refresh_reuse_grace_seconds)
    if token.used_at is not None and now - token.used_at > grace:
        await _revoke_sessions(uow, login.user_id, [login], reason="refresh_token_reused")
        log.warning(
            "auth.refresh_token_reused", user_id=str(login.user_id), session_id=str(login.id)
        )
        # This error must not undo the revocation, which the request's rollback would do.
        await uow.commit()
        raise InvalidGrant(
            "The refresh token was already used, so the session has ended; log in again."
        )

    user = await uow.session.get(User, login.user_id)
    if user is None:
        raise InvalidGrant("The account no longer exists.")
    if workspace_id is not None:
        workspace = await workspaces.choose_workspace(uow.session, user.id, [workspace_id])
        if workspace is None or workspace.id != workspace_id:
            raise InvalidGrant("You are not a member of this workspace.")
    else:
        workspace = await workspaces.choose_workspace(
            uow.session, user.id, [login.workspace_id, user.last_workspace_id]
        )
    new_workspace_id = workspace.id if workspace else None
    if new_workspace_id != login.workspace_id:
        # A switch, or a fallback after the user left the session's workspace.
        login.workspace_id = new_workspace_id
        user.last_workspace_id = new_workspace_id

    if token.used_at is None:
        token.used_at = now
    # Within the grace period another child is issued, so two tabs refreshing at once both win.
    new_refresh_token = _add_refresh_token(uow, login, parent_id=token.id)
    login.last_used_at = now
    login.expires_at = now + timedelta(seconds=uow.settings.refresh_token_ttl_seconds)
    await uow.session.flush()
    return await issue_tokens(uow, user, login, workspace, refresh_token=new_refresh_token)


def account_key(email: str) -> str:
    # Rate-limit keys may be stored in the database, so they carry a digest, not the address.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def start_session(
    uow: UnitOfWork, user: User, workspace_id: uuid.UUID | None, client: ClientInfo
) -> AuthSession:
    now = uow.now()
    login = AuthSession(
        id=uuid7(),
        user_id=user.id,
        workspace_id=workspace_id,
        user_agent=(client.user_agent or "")[:300] or None,
        ip_address=client.ip[:64],
        created_at=now,
        last_used_at=now,
        expires_at=now + timedelta(seconds=uow.settings.refresh_token_ttl_seconds),
    )
    uow.session.add(login)
    return login


def _add_refresh_token(
    uow: UnitOfWork, login: AuthSession, *, parent_id: uuid.UUID | None = None
) -> str:
    token = new_token()
    uow.session.add(
        RefreshToken(
            session_id=login.id,
            token_hash=hash_token(token),
            parent_id=parent_id,
            created_at=uow.now(),
        )
    )
    return token


async def issue_tokens(
    uow: UnitOfWork,
    user: User,
    login: AuthSession,
    workspace: WorkspaceRef | None,
    *,
    refresh_token: str | None = None,
) -> IssuedTokens:
    if refresh_token is None:
        refresh_token = _add_refresh_token(uow, login)
        await uow.session.flush()
    ttl = uow.settings.access_token_ttl_seconds
    access_token = issue_access_token(
        uow.rt.secrets.secret_key,
        user_id=user.id,
        session_id=login.id,
        workspace_id=workspace.id if workspace else None,
        now=uow.now(),
        ttl_seconds=ttl,
    )
    return IssuedTokens(
        access_token=access_token,
        expires_in=ttl,
        refresh_token=refresh_token,
        user=user,
        workspace=workspace,
    )


# --- Sessions -------------------------------------------------------------------------------


async def list_sessions(uow: UnitOfWork, user: UserActor) -> list[AuthSession]:
    """List the user's sessions that are neither revoked nor expired, most recently used first."""
    result = await uow.session.scalars(
        sa.select(AuthSession)
        .where(
            AuthSession.user_id == user.user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > uow.now(),
        )
        .order_by(AuthSession.last_used_at.desc(), AuthSession.id)
    )
    return list(result)


async def revoke_session(uow: UnitOfWork, user: UserActor, session_id: uuid.UUID) -> None:
    """End one of the user's active sessions; another user's session id is not found."""
    login = await uow.session.scalar(
        sa.select(AuthSession).where(
            AuthSession.id == session_id,
            AuthSession.user_id == user.user_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > uow.now(),
        )
    )
    if login is None:
        raise NotFound("No active session with this id.")
    await _revoke_sessions(uow, user.user_id, [login], reason="revoked")


async def log_out(uow: UnitOfWork, user: UserActor, *, everywhere: bool) -> None:
    """End this session, or with ``everywhere`` every session of the user."""
    await revoke_active_sessions(
        uow,
        user.user_id,
        only=None if everywhere else user.session_id,
        reason="logout_all" if everywhere else "logout",
    )


async def revoke_active_sessions(
    uow: UnitOfWork,
    user_id: uuid.UUID,
    *,
    reason: str,
    only: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> None:
    query = sa.select(AuthSession).where(
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > uow.now(),
    )
    if only is not None:
        query = query.where(AuthSession.id == only)
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    sessions = list(await uow.session.scalars(query))
    await _revoke_sessions(uow, user_id, sessions, reason=reason)


async def _revoke_sessions(
    uow: UnitOfWork, user_id: uuid.UUID, sessions: list[AuthSession], *, reason: str
) -> None:
    """Revoke sessions and tell the gateway to close their WebSocket connections."""
    if not sessions:
        return
    now = uow.now()
    for login in sessions:
        login.revoked_at = now
        login.revoked_reason = reason
    await uow.session.flush()
    uow.record_event(
        "internal.sessions_revoked",
        {"session_ids": [str(login.id) for login in sessions]},
        workspace_id=None,
        user_id=user_id,
    )
    log.info("auth.sessions_revoked", user_id=str(user_id), count=len(sessions), reason=reason)
