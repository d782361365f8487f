"""The workspace's own email provider: settings and a test send."""

from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.auth.dependencies import AdminDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.email import provider_settings
from frontdesk.email.models import EmailProviderSetting
from frontdesk.email.schemas import (
    ProviderSettingsIn,
    ProviderSettingsOut,
    ProviderTestIn,
    ProviderTestOut,
)

router = APIRouter(prefix="/email/provider", tags=["email provider"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "The workspace has no email provider."},
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=ProviderSettingsOut, responses=_ERRORS)
async def get_provider(uow: UowDep, actor: AdminDep) -> ProviderSettingsOut:
    """Show the workspace's provider with secrets masked, or kind 'instance' without one."""
    setting = await uow.session.get(EmailProviderSetting, actor.workspace_id)
    if setting is None:
        return ProviderSettingsOut(
            kind="instance",
            config={},
            from_address=uow.settings.email_from,
            track_opens=False,
            track_clicks=False,
            has_webhook_secret=False,
            events_webhook_url=None,
            inbound_webhook_url=None,
            updated_at=None,
        )
    return provider_settings.view(uow, setting)


@router.put("", response_model=ProviderSettingsOut, responses=_ERRORS)
async def put_provider(
    uow: UowDep, actor: AdminDep, body: ProviderSettingsIn
) -> ProviderSettingsOut:
    """Set the provider the workspace sends through; every check runs before anything is stored."""
    setting = await provider_settings.put_setting(uow, workspace_id=actor.workspace_id, data=body)
    return provider_settings.view(uow, setting)


@router.delete("", status_code=204, response_class=Response, responses=_ERRORS)
async def delete_provider(uow: UowDep, actor: AdminDep) -> Response:
    """Remove the provider, if any; the workspace sends through the instance's mail again."""
    await provider_settings.delete_setting(uow, workspace_id=actor.workspace_id)
    return Response(status_code=204)


@router.post(
    "/test",
    response_model=ProviderTestOut,
    responses={
        **_ERRORS,
        502: {
            "model": Problem,
            "description": "The provider rejected the email; `detail` quotes it.",
        },
    },
)
async def test_provider(uow: UowDep, actor: AdminDep, body: ProviderTestIn) -> ProviderTestOut:
    """Send a test email through the provider now and report the provider's exact error."""
    provider_message_id = await provider_settings.send_test(
        uow,
        workspace_id=actor.workspace_id,
        to=str(body.to),
    )
    return ProviderTestOut(status="sent", provider_message_id=provider_message_id)
