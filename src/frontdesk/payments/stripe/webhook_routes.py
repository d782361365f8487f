"""POST /webhooks/stripe/{webhook_token}: verify, store once, enqueue, return 200.

The request does no payment work: Stripe waits for the response and retries slow endpoints,
so the event is stored by its id and applied by the ``payments.stripe_event`` job. A repeated
delivery finds the stored id and stores and enqueues nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Request
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from frontdesk.core.api import UowDep
from frontdesk.core.db import dialect_name
from frontdesk.core.errors import Conflict, ProblemError, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import StripeEvent
from frontdesk.payments.stripe import webhooks
from frontdesk.payments.stripe.credentials import decrypt_webhook_secret, find_webhook_account
from frontdesk.payments.stripe.events import EVENT_JOB

log = structlog.get_logger()

router = APIRouter(tags=["stripe webhooks"])


class SignatureRejected(ProblemError):
    status = 400
    code = "signature_invalid"
    title = "Webhook signature rejected"


def _event_insert(insert: Any) -> Any:
    return insert(StripeEvent.__table__).on_conflict_do_nothing(
        index_elements=["workspace_id", "event_id"]
    )


# Built once: a Core INSERT on the table skips the ORM's per-call statement building.
_EVENT_INSERTS = {"postgresql": _event_insert(pg_insert), "sqlite": _event_insert(sqlite_insert)}


async def store_event(uow: UnitOfWork, workspace_id: uuid.UUID, event: dict[str, Any]) -> bool:
    """Insert the event unless its id is stored already; return whether it was new."""
    values = {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "event_id": event["id"],
        "type": event["type"],
        "api_version": event.get("api_version"),
        "stripe_created": event["created"],
        "payload": event,
        "received_at": uow.now(),
        "processed_at": None,
        "attempts": 0,
        "last_error": None,
    }
    statement = _EVENT_INSERTS[dialect_name(uow.session)]
    result = await uow.session.execute(statement, values)
    return bool(result.rowcount)  # type: ignore[attr-defined]


@router.post(
    "/webhooks/stripe/{webhook_token}",
    responses={
        200: {"description": '{"received": true, "duplicate": false}'},
        400: {"description": "The signature is missing, wrong or stale, or the body is no event."},
        404: {"description": "No workspace has this webhook address."},
        409: {"description": "The workspace has no webhook signing secret yet."},
    },
)
async def receive_stripe_webhook(
    webhook_token: str, request: Request, uow: UowDep
) -> dict[str, bool]:
    """Receive one Stripe event for the workspace that owns this address."""
    body = await request.body()
    account = await find_webhook_account(uow, webhook_token)
    secret = decrypt_webhook_secret(uow, account)
    if secret is None:
        raise Conflict(
            "The workspace has no Stripe webhook signing secret; set webhook_secret with PUT "
            "/api/v1/payments/stripe.",
            code="webhook_secret_missing",
        )
    try:
        webhooks.verify_signature(
            body,
            request.headers.get("stripe-signature"),
            secret,
            now=int(uow.now().timestamp()),
            tolerance_seconds=uow.settings.stripe_webhook_tolerance_seconds,
        )
    except webhooks.SignatureInvalid as exc:
        log.warning(
            "stripe.webhook_rejected", workspace_id=str(account.workspace_id), reason=exc.code
        )
        raise SignatureRejected(exc.message, code=exc.code) from exc
    try:
        event = webhooks.parse_event(body)
    except ValueError as exc:
        raise ValidationFailed("body", f"{exc}; expected a Stripe event.", "not_an_event") from exc
    new = await store_event(uow, account.workspace_id, event)
    if new:
        await uow.insert_job(
            EVENT_JOB,
            {"workspace_id": str(account.workspace_id), "event_id": event["id"]},
            workspace_id=account.workspace_id,
        )
    return {"received": True, "duplicate": not new}
