"""Payment settings API: number patterns, defaults, business details and branding."""

from __future__ import annotations

from fastapi import APIRouter

from frontdesk.auth.dependencies import AdminDep, AgentDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.payments.schemas import PaymentSettingsIn, PaymentSettingsOut
from frontdesk.payments.settings import load_settings, settings_view, update_settings

router = APIRouter(prefix="/payments/settings", tags=["payments"])

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": Problem, "description": "Invalid input; `errors` names the field."},
}


@router.get("", response_model=PaymentSettingsOut)
async def get_settings(uow: UowDep, actor: AgentDep) -> PaymentSettingsOut:
    """Read the payment settings; a workspace that never saved them gets the defaults."""
    return settings_view(await load_settings(uow, actor.workspace_id))


@router.put("", response_model=PaymentSettingsOut, responses=_ERRORS)
async def put_settings(uow: UowDep, actor: AdminDep, body: PaymentSettingsIn) -> PaymentSettingsOut:
    """Change the payment settings (admins); fields left out keep their values."""
    return settings_view(await update_settings(uow, actor.workspace_id, body))
