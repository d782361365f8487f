"""Account endpoints: sign-up, tokens, sessions, email verification, passwords and profile."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Request, Response

from frontdesk.auth import service, sessions
from frontdesk.auth.dependencies import UserDep
from frontdesk.auth.models import User
from frontdesk.auth.schemas import (
    AcceptedResponse,
    LogoutRequest,
    PasswordChangeRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    ProfileOut,
    ProfileUpdate,
    SessionOut,
    SignupRequest,
    TokenRequest,
    TokenResponse,
    UserOut,
    VerifyEmailRequest,
    WorkspaceRef,
    problem_responses,
)
from frontdesk.auth.sessions import ClientInfo, IssuedTokens
from frontdesk.core.api import ClientIpDep, UowDep

router = APIRouter(tags=["auth"])


async def client_info(request: Request, ip: ClientIpDep) -> ClientInfo:
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent"))


ClientDep = Annotated[ClientInfo, Depends(client_info)]

# RFC 6749 section 5.1: responses that carry tokens must not be cached.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        locale=user.locale,
        email_verified=user.email_verified_at is not None,
    )


def _token_response(issued: IssuedTokens, response: Response) -> TokenResponse:
    response.headers.update(_NO_STORE)
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        refresh_token=issued.refresh_token,
        user=user_out(issued.user),
        workspace=issued.workspace,
    )


@router.post(
    "/auth/signup",
    status_code=201,
    responses=problem_responses(400, 403, 409, 422, 429),
)
async def sign_up(
    body: SignupRequest, uow: UowDep, client: ClientDep, response: Response
) -> TokenResponse:
    """Create an account with its own workspace, or join a workspace with an invitation token."""
    return _token_response(await service.sign_up(uow, body, client), response)


@router.post("/auth/token", responses=problem_responses(400, 422, 429))
async def token(
    body: TokenRequest, uow: UowDep, client: ClientDep, response: Response
) -> TokenResponse:
    """Log in with a password, or exchange a refresh token (optionally switching workspace)."""
    return _token_response(await sessions.grant_tokens(uow, body, client), response)


@router.post("/auth/logout", status_code=204, responses=problem_responses(401))
async def log_out(
    user: UserDep, uow: UowDep, body: Annotated[LogoutRequest | None, Body()] = None
) -> None:
    """End this session, or every session of the account with ``{"all": true}``."""
    await sessions.log_out(uow, user, everywhere=body.all if body else False)


@router.get("/auth/sessions", responses=problem_responses(401))
async def list_sessions(user: UserDep, uow: UowDep) -> list[SessionOut]:
    """List the account's active sessions (signed-in devices)."""
    active = await sessions.list_sessions(uow, user)
    return [
        SessionOut(
            id=login.id,
            created_at=login.created_at,
            last_used_at=login.last_used_at,
            user_agent=login.user_agent,
            ip_address=login.ip_address,
            current=login.id == user.session_id,
        )
        for login in active
    ]


@router.delete(
    "/auth/sessions/{session_id}", status_code=204, responses=problem_responses(401, 404)
)
async def revoke_session(session_id: uuid.UUID, user: UserDep, uow: UowDep) -> None:
    """Sign out one device of the account."""
    await sessions.revoke_session(uow, user, session_id)


@router.post("/auth/password-reset", status_code=202, responses=problem_responses(422, 429))
async def request_password_reset(
    body: PasswordResetRequest, uow: UowDep, ip: ClientIpDep
) -> AcceptedResponse:
    """Email a reset link if the account exists; the response is the same either way."""
    await service.request_password_reset(uow, email=body.email, client_ip=ip)
    return AcceptedResponse(detail=service.RESET_REQUESTED_DETAIL)


@router.post(
    "/auth/password-reset/confirm",
    status_code=204,
    responses=problem_responses(400, 422, 429),
)
async def confirm_password_reset(body: PasswordResetConfirm, uow: UowDep, ip: ClientIpDep) -> None:
    """Set a new password with the token from the reset email; every session ends."""
    await service.reset_password(uow, token=body.token, password=body.password, client_ip=ip)


@router.post("/auth/password", status_code=204, responses=problem_responses(401, 422, 429))
async def change_password(body: PasswordChangeRequest, user: UserDep, uow: UowDep) -> None:
    """Change the password; the account's other sessions end, this one stays."""
    await service.change_password(
        uow, user, current_password=body.current_password, new_password=body.new_password
    )


@router.post("/auth/verify-email", status_code=204, responses=problem_responses(400, 422, 429))
async def verify_email(body: VerifyEmailRequest, uow: UowDep, ip: ClientIpDep) -> None:
    """Confirm the account's email address with the token from the verification email."""
    await service.verify_email(uow, token=body.token, client_ip=ip)


@router.post(
    "/auth/verify-email/resend",
    status_code=202,
    responses=problem_responses(401, 409, 429),
)
async def resend_verification(user: UserDep, uow: UowDep) -> AcceptedResponse:
    """Send a new verification email to the account's address."""
    await service.resend_verification(uow, user)
    return AcceptedResponse(detail="We sent a new verification link to your email address.")


def _profile_out(
    user: User, workspaces: list[WorkspaceRef], current: uuid.UUID | None
) -> ProfileOut:
    return ProfileOut(
        **user_out(user).model_dump(),
        created_at=user.created_at,
        current_workspace_id=current,
        workspaces=workspaces,
    )


@router.get("/me", tags=["profile"], responses=problem_responses(401))
async def get_profile(user: UserDep, uow: UowDep) -> ProfileOut:
    """Return the account with the workspaces it belongs to and its role in each."""
    account, workspaces = await service.get_profile(uow, user)
    return _profile_out(account, workspaces, user.workspace_id)


@router.patch("/me", tags=["profile"], responses=problem_responses(401, 422))
async def update_profile(body: ProfileUpdate, user: UserDep, uow: UowDep) -> ProfileOut:
    """Change the name or the locale; changing the email address is not supported."""
    account, workspaces = await service.update_profile(uow, user, body)
    return _profile_out(account, workspaces, user.workspace_id)
