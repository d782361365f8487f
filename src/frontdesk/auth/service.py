"""Accounts: sign-up, token grants, login sessions, email verification, passwords, profile.

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
from sqlalchemy.exc import IntegrityError

from frontdesk.auth.dependencies import UserActor
from frontdesk.auth.models import AuthSession, OneTimeToken, RefreshToken, User
from frontdesk.auth.schemas import (
    ProfileUpdate,
    SignupRequest,
    TokenRequest,
    WorkspaceRef,
)
from frontdesk.auth.tokens import ExpiredToken, InvalidToken, hash_token, issue_access_token
from frontdesk.core.errors import Conflict, InvalidGrant, NotFound, ValidationFailed
from frontdesk.core.ids import new_token, uuid7
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import service as email_service
from frontdesk.workspaces import invitations
from frontdesk.workspaces import service as workspaces

log = structlog.get_logger()

# Rate limits (max requests, window in seconds). Login counts every attempt, before the
# password is checked, so an unknown email is limited exactly like a known one.
SIGNUPS_PER_IP = Limit("auth.signup.ip", 20, 3600)
LOGINS_PER_ACCOUNT_AND_IP = Limit("auth.login.account_ip", 10, 300)
LOGINS_PER_IP = Limit("auth.login.ip", 30, 300)
# The ceiling that still applies when every attempt comes from another address.
LOGINS_PER_ACCOUNT = Limit("auth.login.account", 100, 3600)
REFRESHES_PER_IP = Limit("auth.refresh.ip", 300, 300)
RESET_REQUESTS_PER_IP = Limit("auth.password_reset.ip", 20, 3600)
RESET_REQUESTS_PER_ACCOUNT = Limit("auth.password_reset.account", 5, 3600)
TOKEN_REDEMPTIONS_PER_IP = Limit("auth.token_redemption.ip", 30, 900)
VERIFICATION_EMAILS_PER_USER = Limit("auth.verification_email.user", 5, 3600)
PASSWORD_CHANGES_PER_USER = Limit("auth.password_change.user", 10, 900)

EMAIL_VERIFICATION = "email_verification"
PASSWORD_RESET = "password_reset"

RESET_REQUESTED_DETAIL = (
    "If an account exists for this address, we sent it a link to reset the password."
)


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


# --- Sign-up --------------------------------------------------------------------------------


async def sign_up(uow: UnitOfWork, body: SignupRequest, client: ClientInfo) -> IssuedTokens:
    """Create an account, its workspace (or join an invited one) and a login session."""
    await uow.rt.limiter.check((SIGNUPS_PER_IP, client.ip))
    if body.workspace_name is not None and body.invitation_token is not None:
        raise ValidationFailed(
            "invitation_token",
            "Send either workspace_name (to create a workspace) or invitation_token (to join "
            "one), not both.",
            "conflicting_fields",
        )
    if body.workspace_name is None and body.invitation_token is None:
        raise ValidationFailed(
            "workspace_name",
            "This field is required unless you sign up with an invitation_token.",
            "missing",
        )
    if await find_user_by_email(uow, body.email) is not None:
        raise _email_taken()

    now = uow.now()
    user = User(
        email=body.email,
        password_hash=await uow.rt.hasher.hash(body.password),
        full_name=body.full_name,
        is_instance_admin=False,
        locale="en",
        created_at=now,
        updated_at=now,
    )
    uow.session.add(user)
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        # Another sign-up with this address committed between the check and the insert.
        raise _email_taken() from exc

    if body.invitation_token is not None:
        workspace = await invitations.join_by_invitation(
            uow, token=body.invitation_token, user_id=user.id, email=user.email
        )
    else:
        assert body.workspace_name is not None
        created = await workspaces.create_workspace(
            uow,
            name=body.workspace_name,
            default_country=body.default_country,
            owner_id=user.id,
        )
        workspace = WorkspaceRef(id=created.id, name=created.name, role="owner")
        await _send_verification(uow, user)

    user.last_workspace_id = workspace.id
    login = _start_session(uow, user, workspace.id, client)
    await uow.session.flush()
    log.info("auth.signed_up", user_id=str(user.id), workspace_id=str(workspace.id))
    return await _issue_tokens(uow, user, login, workspace)


def _email_taken() -> Conflict:
    return Conflict(
        "An account with this email address already exists; log in or reset its password.",
        code="email_taken",
    )


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
    account = _account_key(email)
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
    login = _start_session(uow, user, user.last_workspace_id, client)
    await uow.session.flush()
    log.info("auth.logged_in", user_id=str(user.id), session_id=str(login.id))
    return await _issue_tokens(uow, user, login, workspace)


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
    return await _issue_tokens(uow, user, login, workspace, refresh_token=new_refresh_token)


def _account_key(email: str) -> str:
    # Rate-limit keys may be stored in the database, so they carry a digest, not the address.
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


def _start_session(
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


async def _issue_tokens(
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
    await _revoke_active_sessions(
        uow,
        user.user_id,
        only=None if everywhere else user.session_id,
        reason="logout_all" if everywhere else "logout",
    )


async def _revoke_active_sessions(
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


# --- Email verification ---------------------------------------------------------------------


async def verify_email(uow: UnitOfWork, *, token: str, client_ip: str) -> None:
    await uow.rt.limiter.check((TOKEN_REDEMPTIONS_PER_IP, client_ip))
    redeemed = await _redeem_one_time_token(uow, token, EMAIL_VERIFICATION)
    user = await uow.session.get(User, redeemed.user_id)
    if user is not None and user.email_verified_at is None:
        user.email_verified_at = uow.now()
        user.updated_at = uow.now()
        log.info("auth.email_verified", user_id=str(user.id))
    await uow.session.flush()


async def resend_verification(uow: UnitOfWork, actor: UserActor) -> None:
    user = await _get_user(uow, actor.user_id)
    if user.email_verified_at is not None:
        raise Conflict("Your email address is already verified.", code="email_already_verified")
    await uow.rt.limiter.check((VERIFICATION_EMAILS_PER_USER, str(user.id)))
    await _send_verification(uow, user)


async def _send_verification(uow: UnitOfWork, user: User) -> None:
    token = _add_one_time_token(
        uow, user.id, EMAIL_VERIFICATION, uow.settings.verification_token_ttl_seconds
    )
    await email_service.send_verification_email(
        uow, to=user.email, full_name=user.full_name, token=token
    )


# --- Passwords ------------------------------------------------------------------------------


async def request_password_reset(uow: UnitOfWork, *, email: str, client_ip: str) -> None:
    """Email a reset link when the account exists; the caller cannot tell whether it does."""
    await uow.rt.limiter.check(
        (RESET_REQUESTS_PER_IP, client_ip),
        (RESET_REQUESTS_PER_ACCOUNT, _account_key(email)),
    )
    user = await find_user_by_email(uow, email)
    if user is None:
        # Make and hash a token anyway, so that both responses cost about the same. The two
        # inserts of the other branch (token and email rows) remain the difference.
        hash_token(new_token())
        return
    token = _add_one_time_token(uow, user.id, PASSWORD_RESET, uow.settings.reset_token_ttl_seconds)
    await email_service.send_password_reset_email(
        uow, to=user.email, full_name=user.full_name, token=token
    )
    log.info("auth.password_reset_requested", user_id=str(user.id))


async def reset_password(uow: UnitOfWork, *, token: str, password: str, client_ip: str) -> None:
    """Set a new password from a reset link and end every session of the account."""
    await uow.rt.limiter.check((TOKEN_REDEMPTIONS_PER_IP, client_ip))
    redeemed = await _redeem_one_time_token(uow, token, PASSWORD_RESET)
    user = await _get_user(uow, redeemed.user_id)
    await _set_password(uow, user, password)
    # The link reached the mailbox, which proves the address as well as a verification link.
    if user.email_verified_at is None:
        user.email_verified_at = uow.now()
    await _revoke_active_sessions(uow, user.id, reason="password_reset")
    log.info("auth.password_reset", user_id=str(user.id))


async def change_password(
    uow: UnitOfWork, actor: UserActor, *, current_password: str, new_password: str
) -> None:
    """Replace the password after checking the current one; other sessions end, this one stays."""
    await uow.rt.limiter.check((PASSWORD_CHANGES_PER_USER, str(actor.user_id)))
    user = await _get_user(uow, actor.user_id)
    if not await uow.rt.hasher.verify(user.password_hash, current_password):
        raise ValidationFailed(
            "current_password", "The current password is incorrect.", "incorrect_password"
        )
    await _set_password(uow, user, new_password)
    await _revoke_active_sessions(uow, user.id, keep=actor.session_id, reason="password_changed")
    log.info("auth.password_changed", user_id=str(user.id))


async def _set_password(uow: UnitOfWork, user: User, password: str) -> None:
    now = uow.now()
    user.password_hash = await uow.rt.hasher.hash(password)
    user.updated_at = now
    # Reset links sent before the change must not be able to undo it.
    await uow.session.execute(
        sa.update(OneTimeToken)
        .where(
            OneTimeToken.user_id == user.id,
            OneTimeToken.purpose == PASSWORD_RESET,
            OneTimeToken.used_at.is_(None),
        )
        .values(used_at=now)
    )


# --- One-time tokens ------------------------------------------------------------------------


def _add_one_time_token(uow: UnitOfWork, user_id: uuid.UUID, purpose: str, ttl_seconds: int) -> str:
    token = new_token()
    now = uow.now()
    uow.session.add(
        OneTimeToken(
            user_id=user_id,
            purpose=purpose,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_seconds),
        )
    )
    return token


async def _redeem_one_time_token(uow: UnitOfWork, token: str, purpose: str) -> OneTimeToken:
    """Mark a token used and return it; raise when it is unknown, used or expired."""
    row = await uow.session.scalar(
        sa.select(OneTimeToken)
        .where(OneTimeToken.token_hash == hash_token(token), OneTimeToken.purpose == purpose)
        .with_for_update()
    )
    if row is None or row.used_at is not None:
        raise InvalidToken("This link is invalid or was already used; request a new one.")
    if row.expires_at <= uow.now():
        raise ExpiredToken("This link has expired; request a new one.")
    row.used_at = uow.now()
    return row


# --- Profile --------------------------------------------------------------------------------


async def _get_user(uow: UnitOfWork, user_id: uuid.UUID) -> User:
    user = await uow.session.get(User, user_id)
    if user is None:
        raise NotFound("The account no longer exists.")
    return user


async def get_profile(uow: UnitOfWork, actor: UserActor) -> tuple[User, list[WorkspaceRef]]:
    user = await _get_user(uow, actor.user_id)
    return user, await workspaces.list_user_workspaces(uow.session, user.id)


async def update_profile(
    uow: UnitOfWork, actor: UserActor, changes: ProfileUpdate
) -> tuple[User, list[WorkspaceRef]]:
    user = await _get_user(uow, actor.user_id)
    fields = changes.model_fields_set
    for name in ("full_name", "locale"):
        if name in fields and getattr(changes, name) is None:
            raise ValidationFailed(name, "This field cannot be null.", "null")
    if changes.full_name is not None:
        user.full_name = changes.full_name
    if changes.locale is not None:
        user.locale = changes.locale
    user.updated_at = uow.now()
    await uow.session.flush()
    return user, await workspaces.list_user_workspaces(uow.session, user.id)
