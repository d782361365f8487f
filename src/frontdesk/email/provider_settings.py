"""A workspace's own email provider: its encrypted settings, checks and the test send.

The provider's configuration (API keys and passwords included) is stored as one JSON
document encrypted with the envelope cipher, with the workspace id as associated data, so a
row copied to another workspace does not decrypt. Responses never contain a secret.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from frontdesk.core.errors import FieldError, NotFound, ProblemError, ValidationFailed
from frontdesk.core.hosts import is_private_address
from frontdesk.core.ids import new_token
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.mime import OutgoingEmail, parse_address
from frontdesk.email.models import EmailProviderSetting
from frontdesk.email.providers import PROVIDER_CONFIGS, EmailProvider, build_provider
from frontdesk.email.schemas import ProviderSettingsIn, ProviderSettingsOut
from frontdesk.email.service import PROVIDER_CACHE_KEY, sender_domain
from frontdesk.email.transports import DeliveryError, PermanentDeliveryError

log = structlog.get_logger()

MASK = "********"


class ProviderError(ProblemError):
    status = 502
    code = "provider_error"
    title = "The email provider rejected the request"


@dataclass(frozen=True)
class WorkspaceProvider:
    """A workspace's provider settings, decrypted for one send."""

    kind: str
    config: dict[str, Any]
    from_address: str
    track_opens: bool
    track_clicks: bool

    def build(self) -> EmailProvider:
        return build_provider(self.kind, self.config)


def _associated_data(workspace_id: uuid.UUID) -> bytes:
    return f"email-provider:{workspace_id}".encode()


def _secret_values(model: BaseModel) -> dict[str, Any]:
    """Return the model's fields as JSON values with secrets revealed, for storing."""
    values: dict[str, Any] = {}
    for name, value in model:
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    return json.loads(json.dumps(values, default=str))


def _masked_values(model: BaseModel) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in model:
        if isinstance(value, SecretStr):
            values[name] = MASK
        else:
            values[name] = value
    return json.loads(json.dumps(values, default=str))


def decrypt_config(uow: UnitOfWork, setting: EmailProviderSetting) -> dict[str, Any]:
    plaintext = uow.rt.cipher.decrypt_text(
        setting.config_encrypted, associated_data=_associated_data(setting.workspace_id)
    )
    config: dict[str, Any] = json.loads(plaintext)
    return config


def decrypt_webhook_secret(uow: UnitOfWork, setting: EmailProviderSetting) -> str | None:
    if setting.webhook_secret_encrypted is None:
        return None
    return uow.rt.cipher.decrypt_text(
        setting.webhook_secret_encrypted, associated_data=_associated_data(setting.workspace_id)
    )


async def find_provider(uow: UnitOfWork, workspace_id: uuid.UUID) -> WorkspaceProvider | None:
    """Return the workspace's decrypted provider settings, or None when it has none."""
    setting = await uow.session.get(EmailProviderSetting, workspace_id)
    if setting is None:
        return None
    return WorkspaceProvider(
        kind=setting.kind,
        config=decrypt_config(uow, setting),
        from_address=setting.from_address,
        track_opens=setting.track_opens,
        track_clicks=setting.track_clicks,
    )


def _config_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        errors.append(
            FieldError(
                field=f"config.{location}" if location else "config",
                message=error["msg"],
                code=str(error["type"]),
            )
        )
    return errors


def _is_private(address: str) -> bool:
    return is_private_address(address)


async def host_is_private(host: str) -> bool:
    """Return whether ``host`` is or resolves to a loopback, private or link-local address."""
    try:
        return _is_private(host)
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        # An unknown name fails at send time with the resolver's message.
        return False
    return any(_is_private(str(info[4][0])) for info in infos)


async def _check_hosts(uow: UnitOfWork, kind: str, config: BaseModel) -> list[FieldError]:
    """Reject provider hosts inside the server's network unless the instance allows them.

    A workspace admin chooses these hosts, so without this check the server could be made to
    connect to services that only it can reach.
    """
    if uow.settings.email_providers_allow_private_networks:
        return []
    # NOTE: the name is resolved again at send time, so DNS that changes its answer in
    # between (rebinding) is not caught here.
    checks: list[tuple[str, str]] = []
    if kind == "smtp":
        checks.append(("config.host", str(config.host)))  # type: ignore[attr-defined]
    # The official base URLs are public; only an address the admin typed is checked.
    base_url = getattr(config, "api_base_url", None)
    if base_url and "api_base_url" in config.model_fields_set:
        parts = urlsplit(str(base_url))
        if parts.scheme != "https":
            return [
                FieldError(
                    field="config.api_base_url",
                    message="Use an https:// address for the provider's API.",
                    code="invalid_url",
                )
            ]
        checks.append(("config.api_base_url", parts.hostname or ""))
    errors = []
    for field, host in checks:
        if await host_is_private(host):
            errors.append(
                FieldError(
                    field=field,
                    message=f"'{host}' is a private or loopback address, which this instance "
                    "does not allow for email providers; use the provider's public host.",
                    code="private_host",
                )
            )
    return errors


def view(uow: UnitOfWork, setting: EmailProviderSetting) -> ProviderSettingsOut:
    model = PROVIDER_CONFIGS[setting.kind].model_validate(decrypt_config(uow, setting))
    base = (
        f"{uow.settings.resolved_public_url}/webhooks/email/{setting.kind}/{setting.webhook_token}"
    )
    return ProviderSettingsOut(
        kind=setting.kind,
        config=_masked_values(model),
        from_address=setting.from_address,
        track_opens=setting.track_opens,
        track_clicks=setting.track_clicks,
        has_webhook_secret=setting.webhook_secret_encrypted is not None,
        # SMTP reports no events and delivers no inbound mail to webhooks.
        events_webhook_url=None if setting.kind == "smtp" else f"{base}/events",
        inbound_webhook_url=(
            f"{base}/inbound"
            if setting.kind in ("postmark", "sendgrid", "mailgun", "ses")
            else None
        ),
        updated_at=setting.updated_at,
    )


async def get_setting(uow: UnitOfWork, workspace_id: uuid.UUID) -> EmailProviderSetting:
    setting = await uow.session.get(EmailProviderSetting, workspace_id)
    if setting is None:
        raise NotFound(
            "This workspace has no email provider; it sends through the instance's mail "
            "settings. Set one with PUT /api/v1/email/provider.",
            code="provider_not_set",
        )
    return setting


async def put_setting(
    uow: UnitOfWork, *, workspace_id: uuid.UUID, data: ProviderSettingsIn
) -> EmailProviderSetting:
    """Create or replace the workspace's provider settings after checking them all.

    With the same ``kind`` as before, config fields that are left out or sent as the mask
    keep their stored values, so a client can change one field without resending secrets.
    """
    existing = await uow.session.get(EmailProviderSetting, workspace_id, with_for_update=True)
    config = dict(data.config)
    if existing is not None and existing.kind == data.kind:
        stored = decrypt_config(uow, existing)
        for name, value in stored.items():
            if name not in config or config[name] == MASK:
                config[name] = value

    errors: list[FieldError] = [
        FieldError(
            field=f"config.{name}",
            message="There is no stored value to keep for this provider; send the real value.",
            code="mask_without_value",
        )
        for name, value in config.items()
        if value == MASK
    ]
    if data.kind == "postmark" and data.webhook_secret is not None:
        secret = data.webhook_secret.get_secret_value()
        if secret and ":" not in secret:
            errors.append(
                FieldError(
                    field="webhook_secret",
                    message="Give Postmark's webhook credentials as user:password.",
                    code="invalid_format",
                )
            )
    model: BaseModel | None = None
    try:
        model = PROVIDER_CONFIGS[data.kind].model_validate(config)
    except ValidationError as exc:
        errors.extend(_config_errors(exc))
    try:
        parse_address(data.from_address, "from_address")
    except PermanentDeliveryError as exc:
        errors.append(
            FieldError(
                field="from_address",
                message=f"{exc.reason}; use an address like 'Studio Nine <hello@studio.example>'.",
                code="invalid_email",
            )
        )
    if model is not None:
        errors.extend(await _check_hosts(uow, data.kind, model))
    if errors:
        raise ValidationFailed.many(errors)
    assert model is not None

    now = uow.now()
    associated = _associated_data(workspace_id)
    encrypted = uow.rt.cipher.encrypt_text(
        json.dumps(_secret_values(model)), associated_data=associated
    )
    if existing is None:
        existing = EmailProviderSetting(
            workspace_id=workspace_id,
            webhook_token=new_token(24),
            created_at=now,
        )
        uow.session.add(existing)
    existing.kind = data.kind
    existing.config_encrypted = encrypted
    existing.from_address = data.from_address
    existing.track_opens = data.track_opens
    existing.track_clicks = data.track_clicks
    existing.updated_at = now
    if data.webhook_secret is not None:
        secret = data.webhook_secret.get_secret_value()
        existing.webhook_secret_encrypted = (
            uow.rt.cipher.encrypt_text(secret, associated_data=associated) if secret else None
        )
    await uow.session.flush()
    uow.session.info.pop(PROVIDER_CACHE_KEY, None)
    log.info("email.provider_set", workspace_id=str(workspace_id), kind=data.kind)
    return existing


async def delete_setting(uow: UnitOfWork, *, workspace_id: uuid.UUID) -> None:
    setting = await uow.session.get(EmailProviderSetting, workspace_id)
    if setting is None:
        return
    await uow.session.delete(setting)
    uow.session.info.pop(PROVIDER_CACHE_KEY, None)
    log.info("email.provider_removed", workspace_id=str(workspace_id))


async def send_test(uow: UnitOfWork, *, workspace_id: uuid.UUID, to: str) -> str | None:
    """Send a short test email through the workspace's provider now; return its message id.

    Raises ProviderError with the provider's exact error text when the send fails.
    """
    setting = await get_setting(uow, workspace_id)
    kind = setting.kind
    provider = WorkspaceProvider(
        kind=kind,
        config=decrypt_config(uow, setting),
        from_address=setting.from_address,
        track_opens=False,
        track_clicks=False,
    )
    # The provider's reply can take seconds; no transaction stays open meanwhile.
    await uow.session.rollback()
    test_id = uuid.uuid4()
    email = OutgoingEmail(
        from_address=provider.from_address,
        to=[to],
        subject="Frontdesk test email",
        text="This test email shows that Frontdesk can send through your email provider.",
        html="<p>This test email shows that Frontdesk can send through your email provider.</p>",
        message_id=f"<test-{test_id}@{sender_domain(provider.from_address)}>",
        idempotency_key=f"test-{test_id}",
    )
    adapter = provider.build()
    try:
        result = await adapter.send(email)
    except DeliveryError as exc:
        log.warning("email.provider_test_failed", workspace_id=str(workspace_id), kind=kind)
        raise ProviderError(
            f"{kind} did not accept the test email: {exc.reason}",
            code="provider_error",
        ) from exc
    finally:
        await adapter.close()
    log.info("email.provider_test_sent", workspace_id=str(workspace_id), kind=kind)
    return result.provider_message_id
