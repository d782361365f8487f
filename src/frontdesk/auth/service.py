"""Accounts: sign-up, email verification, password reset and change, and the profile.

Login sessions and token grants are in ``frontdesk.auth.sessions``.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError

from frontdesk.auth import sessions
from frontdesk.auth.dependencies import UserActor
from frontdesk.auth.models import OneTimeToken, User
from frontdesk.auth.schemas import ProfileUpdate, SignupRequest, WorkspaceRef
from frontdesk.auth.sessions import ClientInfo, IssuedTokens
from frontdesk.auth.tokens import ExpiredToken, InvalidToken, hash_token
from frontdesk.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from frontdesk.core.ids import new_token
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.email import service as email_service
from frontdesk.workspaces import invitations
from frontdesk.workspaces import service as workspaces

log = structlog.get_logger()

# Rate limits (max requests, window in seconds).
SIGNUPS_PER_IP = Limit("auth.signup.ip", 20, 3600)
RESET_REQUESTS_PER_IP = Limit("auth.password_reset.ip", 20, 3600)
RESET_REQUESTS_PER_ACCOUNT = Limit("auth.password_reset.account", 5, 3600)
TOKEN_REDEMPTIONS_PER_IP = Limit("auth.token_redemption.ip", 30, 900)
VERIFICATION_EMAILS_PER_USER = Limit("auth.verification_email.user", 5, 3600)
PASSWORD_CHANGES_PER_USER = Limit("auth.password_change.user", 10, 900)

EMAIL_VERIFICATION = "email_verification"
PASSWORD_RESET = "password_reset"
PASSWORD_RESET_JOB = "auth.send_password_reset"

RESET_REQUESTED_DETAIL = (
    "If an account exists for this address, we sent it a link to reset the password."
)


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
    if await sessions.find_user_by_email(uow, body.email) is not None:
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
        try:
            workspace = await invitations.join_by_invitation(
                uow, token=body.invitation_token, user_id=user.id, email=user.email
            )
        except (InvalidToken, ExpiredToken) as exc:
            # On sign-up the token travels in invitation_token, so the error names that field.
            raise type(exc)(exc.detail, field="invitation_token") from exc
    else:
        assert body.workspace_name is not None
        created = await workspaces.create_workspace(
            uow,
            name=body.workspace_name,
            default_country=body.default_country,
            owner_id=user.id,
            reply_to_email=user.email,
        )
        workspace = WorkspaceRef(id=created.id, name=created.name, role="owner")
        await _send_verification(uow, user)

    user.last_workspace_id = workspace.id
    login = sessions.start_session(uow, user, workspace.id, client)
    await uow.session.flush()
    log.info("auth.signed_up", user_id=str(user.id), workspace_id=str(workspace.id))
    return await sessions.issue_tokens(uow, user, login, workspace)


def _email_taken() -> Conflict:
    message = "An account with this email address already exists; log in or reset its password."
    return Conflict(
        message,
        errors=[FieldError(field="email", message=message, code="email_taken")],
        code="email_taken",
    )


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
    """Queue a reset email for ``email``; the caller cannot tell whether an account exists.

    The request writes one job, whatever the address, and the job looks the account up.
    Doing that here made known addresses measurably slower to answer than unknown ones,
    because only they wrote a token and an email.
    """
    await uow.rt.limiter.check(
        (RESET_REQUESTS_PER_IP, client_ip),
        (RESET_REQUESTS_PER_ACCOUNT, sessions.account_key(email)),
    )
    uow.enqueue(PASSWORD_RESET_JOB, {"email": email.strip().lower()})


async def send_password_reset(uow: UnitOfWork, *, email: str) -> None:
    """Email a reset link when an account has this address; do nothing otherwise."""
    user = await sessions.find_user_by_email(uow, email)
    if user is None:
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
    await sessions.revoke_active_sessions(uow, user.id, reason="password_reset")
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
    await sessions.revoke_active_sessions(
        uow, user.id, keep=actor.session_id, reason="password_changed"
    )
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


async def check_link_token(uow: UnitOfWork, *, token: str, purpose: str, client_ip: str) -> None:
    """Raise when a link's token cannot be redeemed, so that its page reports a dead link
    before showing the form. The token stays unused."""
    await uow.rt.limiter.check((TOKEN_REDEMPTIONS_PER_IP, client_ip))
    row = await uow.session.scalar(
        sa.select(OneTimeToken).where(
            OneTimeToken.token_hash == hash_token(token), OneTimeToken.purpose == purpose
        )
    )
    if row is None or row.used_at is not None:
        raise InvalidToken("This link is invalid or was already used; request a new one.")
    if row.expires_at <= uow.now():
        raise ExpiredToken("This link has expired; request a new one.")


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
