"""The workspace's Stripe keys: GET (masked), PUT (checked against Stripe), DELETE."""

from __future__ import annotations

from fastapi import APIRouter, Response

from frontdesk.auth.dependencies import AdminDep
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Problem
from frontdesk.payments.models import StripeAccount
from frontdesk.payments.stripe import credentials
from frontdesk.payments.stripe.credentials import StripeSettingsIn, StripeSettingsOut

router = APIRouter(prefix="/payments/stripe", tags=["stripe"])

_ERRORS: dict[int | str, dict[str, object]] = {
    422: {"model": Problem, "description": "Invalid input or a key Stripe rejected."},
    502: {"model": Problem, "description": "Stripe could not be reached to check the key."},
}


@router.get("", response_model=StripeSettingsOut)
async def get_stripe_settings(uow: UowDep, actor: AdminDep) -> StripeSettingsOut:
    """Show the Stripe keys with secrets masked and the webhook address to give Stripe."""
    account = await uow.session.get(StripeAccount, actor.workspace_id)
    return credentials.view(uow, account)


@router.put("", response_model=StripeSettingsOut, responses=_ERRORS)
async def put_stripe_settings(
    uow: UowDep, actor: AdminDep, body: StripeSettingsIn
) -> StripeSettingsOut:
    """Store the keys once a call to Stripe with the secret key succeeded."""
    account = await credentials.put_account(uow, workspace_id=actor.workspace_id, data=body)
    return credentials.view(uow, account)


@router.delete("", status_code=204, response_class=Response)
async def delete_stripe_settings(uow: UowDep, actor: AdminDep) -> Response:
    """Forget the keys; webhooks to the old address are then rejected with 404."""
    await credentials.delete_account(uow, workspace_id=actor.workspace_id)
    return Response(status_code=204)
