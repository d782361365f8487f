"""POST /webhooks/stripe/{webhook_token}: verify, store once, enqueue, return 200.

The request does no payment work: Stripe waits for the response and retries slow endpoints,
so the event is stored by its id and applied by the ``payments.stripe_event`` job. A repeated
delivery finds the stored id and stores and enqueues nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from frontdesk.core.api import RuntimeDep
from frontdesk.core.errors import Conflict, ProblemError, ValidationFailed
from frontdesk.core.ids import uuid7
from frontdesk.core.uow import insert_job
from frontdesk.payments.models import StripeEvent
from frontdesk.payments.stripe import webhooks
from frontdesk.payments.stripe.credentials import (
    WebhookTarget,
    forget_webhook_target,
    webhook_target,
)
from frontdesk.payments.stripe.events import EVENT_JOB
from frontdesk.runtime import Runtime

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


async def store_event(
    connection: AsyncConnection, workspace_id: uuid.UUID, event: dict[str, Any], now: datetime
) -> bool:
    """Insert the event unless its id is stored already; return whether it was new."""
    values = {
        "id": uuid7(),
        "workspace_id": workspace_id,
        "event_id": event["id"],
        "type": event["type"],
        "api_version": event.get("api_version"),
        "stripe_created": event["created"],
        "payload": event,
        "received_at": now,
        "processed_at": None,
        "attempts": 0,
        "last_error": None,
    }
    result = await connection.execute(_EVENT_INSERTS[connection.dialect.name], values)
    return bool(result.rowcount)


@router.post(
    "/webhooks/stripe/{webhook_token}",
    response_model=None,
    responses={
        200: {"description": '{"received": true, "duplicate": false}'},
        400: {"description": "The signature is missing, wrong or stale, or the body is no event."},
        404: {"description": "No workspace has this webhook address."},
        409: {"description": "The workspace has no webhook signing secret yet."},
    },
)
async def receive_stripe_webhook(
    webhook_token: str, request: Request, runtime: RuntimeDep
) -> JSONResponse:
    """Receive one Stripe event for the workspace that owns this address."""
    body = await request.body()
    try:
        new = await _receive(runtime, webhook_token, request, body)
    except IntegrityError:
        # The event's foreign key failed, so the remembered workspace was deleted. Reading
        # the address again finds no account.
        forget_webhook_target(webhook_token)
        new = await _receive(runtime, webhook_token, request, body)
    if new:
        runtime.wake_worker()
    return JSONResponse({"received": True, "duplicate": not new})


async def _receive(runtime: Runtime, webhook_token: str, request: Request, body: bytes) -> bool:
    """Verify, store and enqueue the event in one transaction; return whether it was new.

    The transaction runs on a Core connection, without an ORM session or unit of work. The
    session cost about 0.1 ms of a delivery's 1.4 ms of CPU (measured in process, SQLite).
    """
    async with runtime.engine.begin() as connection:
        target = await _verified_target(connection, runtime, webhook_token, request, body)
        try:
            event = webhooks.parse_event(body)
        except ValueError as exc:
            raise ValidationFailed(
                "body", f"{exc}; expected a Stripe event.", "not_an_event"
            ) from exc
        now = runtime.clock.now()
        new = await store_event(connection, target.workspace_id, event, now)
        if new:
            await insert_job(
                connection,
                runtime.settings,
                now,
                EVENT_JOB,
                {"workspace_id": str(target.workspace_id), "event_id": event["id"]},
                workspace_id=target.workspace_id,
            )
    return new


async def _verified_target(
    connection: AsyncConnection, runtime: Runtime, webhook_token: str, request: Request, body: bytes
) -> WebhookTarget:
    """Return the address's workspace once the body's signature verifies with its secret."""
    target = await webhook_target(connection, runtime, webhook_token)
    if target.remembered and target.secret is not None:
        try:
            _verify(runtime, request, body, target.secret)
        except webhooks.SignatureInvalid:
            # The secret may have changed since this process remembered it.
            target = await webhook_target(connection, runtime, webhook_token, fresh=True)
        else:
            return target
    if target.secret is None:
        raise Conflict(
            "The workspace has no Stripe webhook signing secret; set webhook_secret with PUT "
            "/api/v1/payments/stripe.",
            code="webhook_secret_missing",
        )
    try:
        _verify(runtime, request, body, target.secret)
    except webhooks.SignatureInvalid as exc:
        log.warning(
            "stripe.webhook_rejected", workspace_id=str(target.workspace_id), reason=exc.code
        )
        raise SignatureRejected(exc.message, code=exc.code) from exc
    return target


def _verify(runtime: Runtime, request: Request, body: bytes, secret: str) -> None:
    webhooks.verify_signature(
        body,
        request.headers.get("stripe-signature"),
        secret,
        now=int(runtime.clock.now().timestamp()),
        tolerance_seconds=runtime.settings.stripe_webhook_tolerance_seconds,
    )
