"""A workspace's Stripe credentials: stored encrypted, checked against Stripe, shown masked.

The secret key and the webhook signing secret are encrypted with the envelope cipher, with
the workspace id as associated data, so a row copied to another workspace does not decrypt.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, Field, SecretStr, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection

from frontdesk.core.errors import NotFound, ProblemError, ValidationFailed
from frontdesk.core.ids import new_token
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import StripeAccount
from frontdesk.payments.stripe.client import (
    AuthenticationError,
    ClientOptions,
    PermissionError_,
    StripeClient,
    StripeError,
)
from frontdesk.runtime import Runtime

log = structlog.get_logger()

MASK = "********"


class StripeUnavailable(ProblemError):
    status = 502
    code = "stripe_unavailable"
    title = "Stripe could not be reached"


class StripeNotConfigured(ProblemError):
    status = 409
    code = "stripe_not_configured"
    title = "Stripe is not set up"


class StripeSettingsIn(BaseModel):
    secret_key: SecretStr = Field(
        description="Secret or restricted key: sk_test_..., sk_live_..., rk_test_... or rk_live_..."
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Signing secret of the webhook endpoint (whsec_...); kept when omitted.",
    )
    publishable_key: str | None = Field(default=None, max_length=255)

    @field_validator("secret_key")
    @classmethod
    def _check_secret_key(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")) or len(text) > 255:
            raise ValueError(
                "must be a Stripe secret key (sk_test_..., sk_live_...) or restricted key "
                "(rk_...) from Developers > API keys"
            )
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (
            not value.get_secret_value().startswith("whsec_") or len(value.get_secret_value()) > 255
        ):
            raise ValueError("must be the endpoint's signing secret, which starts with whsec_")
        return value

    @field_validator("publishable_key")
    @classmethod
    def _check_publishable_key(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("pk_test_", "pk_live_")):
            raise ValueError("must be a publishable key (pk_test_... or pk_live_...)")
        return value


class StripeSettingsOut(BaseModel):
    configured: bool
    livemode: bool | None
    # The key's prefix and last four characters, as Stripe's dashboard shows it.
    secret_key: str | None
    has_webhook_secret: bool
    publishable_key: str | None
    webhook_url: str | None
    updated_at: datetime | None


def _associated_data(workspace_id: uuid.UUID) -> bytes:
    return f"stripe-account:{workspace_id}".encode()


def client_options(uow: UnitOfWork) -> ClientOptions:
    settings = uow.settings
    return ClientOptions(
        api_base=settings.stripe_api_base,
        timeout_seconds=settings.stripe_timeout_seconds,
        max_retries=settings.stripe_max_retries,
    )


def decrypt_secret_key(uow: UnitOfWork, account: StripeAccount) -> str:
    return uow.rt.cipher.decrypt_text(
        account.secret_key_encrypted, associated_data=_associated_data(account.workspace_id)
    )


async def get_account(uow: UnitOfWork, workspace_id: uuid.UUID) -> StripeAccount:
    """Return the workspace's Stripe account; 409 ``stripe_not_configured`` without one."""
    account = await uow.session.get(StripeAccount, workspace_id)
    if account is None:
        raise StripeNotConfigured(
            "This workspace has no Stripe keys; an admin sets them with PUT "
            "/api/v1/payments/stripe."
        )
    return account


async def client_for(uow: UnitOfWork, workspace_id: uuid.UUID) -> StripeClient:
    """Return a client with the workspace's secret key; the caller closes it."""
    account = await get_account(uow, workspace_id)
    return StripeClient(decrypt_secret_key(uow, account), client_options(uow))


def _masked_key(key: str) -> str:
    prefix = key[:8]
    return f"{prefix}{MASK}{key[-4:]}"


def view(uow: UnitOfWork, account: StripeAccount | None) -> StripeSettingsOut:
    if account is None:
        return StripeSettingsOut(
            configured=False,
            livemode=None,
            secret_key=None,
            has_webhook_secret=False,
            publishable_key=None,
            webhook_url=None,
            updated_at=None,
        )
    return StripeSettingsOut(
        configured=True,
        livemode=account.livemode,
        secret_key=_masked_key(decrypt_secret_key(uow, account)),
        has_webhook_secret=account.webhook_secret_encrypted is not None,
        publishable_key=account.publishable_key,
        webhook_url=f"{uow.settings.resolved_public_url}/webhooks/stripe/{account.webhook_token}",
        updated_at=account.updated_at,
    )


async def _check_key(uow: UnitOfWork, secret_key: str) -> dict[str, Any]:
    """Call GET /v1/account with the key, so a wrong key fails here and not at payment time."""
    async with StripeClient(secret_key, client_options(uow)) as client:
        try:
            return await client.get("/v1/account")
        except (AuthenticationError, PermissionError_) as exc:
            raise ValidationFailed(
                "secret_key",
                f"Stripe rejected the key: {exc.message} Copy the key again from the "
                "Stripe dashboard (Developers > API keys).",
                code="stripe_key_rejected",
            ) from exc
        except StripeError as exc:
            log.warning("stripe.key_check_failed", status=exc.status, error_type=exc.error_type)
            raise StripeUnavailable(
                f"Stripe did not confirm the key: {exc.message} Try again later."
            ) from exc


async def put_account(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, data: StripeSettingsIn
) -> StripeAccount:
    """Store the workspace's keys once Stripe accepted the secret key."""
    secret_key = data.secret_key.get_secret_value()
    if data.publishable_key is not None:
        key_mode = secret_key.split("_")[1]
        if data.publishable_key.split("_")[1] != key_mode:
            raise ValidationFailed(
                "publishable_key",
                f"the publishable key must be a {key_mode} key like the secret key",
                code="mode_mismatch",
            )
    await _check_key(uow, secret_key)
    now = uow.now()
    cipher = uow.rt.cipher
    associated = _associated_data(workspace_id)
    account = await uow.session.get(StripeAccount, workspace_id)
    if account is None:
        account = StripeAccount(
            workspace_id=workspace_id,
            webhook_token=new_token(24),
            webhook_secret_encrypted=None,
            created_at=now,
        )
        uow.session.add(account)
    account.secret_key_encrypted = cipher.encrypt_text(secret_key, associated_data=associated)
    if data.webhook_secret is not None:
        account.webhook_secret_encrypted = cipher.encrypt_text(
            data.webhook_secret.get_secret_value(), associated_data=associated
        )
    account.publishable_key = data.publishable_key
    account.livemode = "_live_" in secret_key
    account.updated_at = now
    await uow.session.flush()
    _forget_workspace_targets(workspace_id)
    log.info("stripe.account_saved", workspace_id=str(workspace_id), livemode=account.livemode)
    return account


async def delete_account(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> None:
    account = await uow.session.get(StripeAccount, workspace_id)
    if account is not None:
        await uow.session.delete(account)
        await uow.session.flush()
        _forget_workspace_targets(workspace_id)
        log.info("stripe.account_deleted", workspace_id=str(workspace_id))


@dataclass(frozen=True)
class WebhookTarget:
    """The workspace of a webhook address and its signing secret, if one is set."""

    workspace_id: uuid.UUID
    secret: str | None
    # Whether it came from this process's memory instead of the database.
    remembered: bool = False


_WEBHOOK_ACCOUNT_QUERY = sa.select(
    StripeAccount.workspace_id, StripeAccount.webhook_secret_encrypted
).where(StripeAccount.webhook_token == sa.bindparam("token", type_=sa.String))

# Webhook addresses that this process resolved recently, so that a burst of deliveries reads
# and decrypts the account once. Only addresses with a signing secret are kept, each for
# WEBHOOK_TARGET_SECONDS. A signature that fails against a kept secret, and a delivery whose
# workspace is gone, read the account again. Saving or deleting the keys removes the
# workspace's entries in this process. Other processes may use an old entry until it expires.
WEBHOOK_TARGET_SECONDS = 60
MAX_WEBHOOK_TARGETS = 1024
_webhook_targets: OrderedDict[str, tuple[datetime, WebhookTarget]] = OrderedDict()


async def webhook_target(
    connection: AsyncConnection, runtime: Runtime, token: str, *, fresh: bool = False
) -> WebhookTarget:
    """Return the workspace and secret of a webhook address, or raise NotFound for an unknown one.

    ``fresh`` reads the database even when the address is remembered.
    """
    now = runtime.clock.now()
    entry = _webhook_targets.get(token)
    if entry is not None and not fresh and entry[0] > now:
        return entry[1]
    row = (await connection.execute(_WEBHOOK_ACCOUNT_QUERY, {"token": token})).one_or_none()
    if row is None:
        forget_webhook_target(token)
        raise NotFound(
            "No Stripe webhook exists at this address; copy webhook_url again from "
            "GET /api/v1/payments/stripe."
        )
    secret = None
    if row.webhook_secret_encrypted is not None:
        secret = runtime.cipher.decrypt_text(
            row.webhook_secret_encrypted, associated_data=_associated_data(row.workspace_id)
        )
    target = WebhookTarget(row.workspace_id, secret)
    if secret is None:
        forget_webhook_target(token)
    else:
        expires_at = now + timedelta(seconds=WEBHOOK_TARGET_SECONDS)
        _webhook_targets[token] = (expires_at, replace(target, remembered=True))
        _webhook_targets.move_to_end(token)
        while len(_webhook_targets) > MAX_WEBHOOK_TARGETS:
            _webhook_targets.popitem(last=False)
    return target


def forget_webhook_target(token: str) -> None:
    _webhook_targets.pop(token, None)


def _forget_workspace_targets(workspace_id: uuid.UUID) -> None:
    for token, (_expires_at, target) in list(_webhook_targets.items()):
        if target.workspace_id == workspace_id:
            del _webhook_targets[token]
