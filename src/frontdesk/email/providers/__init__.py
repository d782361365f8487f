"""Outbound email providers behind one port, and the factory that builds one from settings.

``build_provider("postmark", {"server_token": ...})`` validates the settings with the
provider's config model from ``PROVIDER_CONFIGS`` and returns an ``EmailProvider``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel

from frontdesk.email.providers.base import EmailProvider, SendResult
from frontdesk.email.providers.mailgun import MailgunConfig, MailgunProvider
from frontdesk.email.providers.postmark import PostmarkConfig, PostmarkProvider
from frontdesk.email.providers.resend import ResendConfig, ResendProvider
from frontdesk.email.providers.sendgrid import SendGridConfig, SendGridProvider
from frontdesk.email.providers.ses import SesConfig, SesProvider
from frontdesk.email.providers.smtp import SmtpConfig, SmtpProvider

PROVIDER_CONFIGS: dict[str, type[BaseModel]] = {
    "smtp": SmtpConfig,
    "postmark": PostmarkConfig,
    "sendgrid": SendGridConfig,
    "ses": SesConfig,
    "mailgun": MailgunConfig,
    "resend": ResendConfig,
}

__all__ = [
    "PROVIDER_CONFIGS",
    "EmailProvider",
    "MailgunConfig",
    "PostmarkConfig",
    "ResendConfig",
    "SendGridConfig",
    "SendResult",
    "SesConfig",
    "SmtpConfig",
    "build_provider",
]


def build_provider(
    kind: str, config: Mapping[str, Any], *, http_client: httpx.AsyncClient | None = None
) -> EmailProvider:
    """Validate ``config`` for provider ``kind`` and build the adapter.

    Raises ``ValueError`` for an unknown kind and ``pydantic.ValidationError`` for invalid
    settings. An adapter given ``http_client`` uses it and leaves it open on ``close()``;
    without one it opens its own. The SMTP adapter ignores ``http_client``.
    """
    model = PROVIDER_CONFIGS.get(kind)
    if model is None:
        raise ValueError(
            f"unknown email provider {kind!r}; expected one of {', '.join(PROVIDER_CONFIGS)}"
        )
    settings = model.model_validate(config)
    if isinstance(settings, SmtpConfig):
        return SmtpProvider(settings)
    if isinstance(settings, PostmarkConfig):
        return PostmarkProvider(settings, http_client=http_client)
    if isinstance(settings, SendGridConfig):
        return SendGridProvider(settings, http_client=http_client)
    if isinstance(settings, SesConfig):
        return SesProvider(settings, http_client=http_client)
    if isinstance(settings, MailgunConfig):
        return MailgunProvider(settings, http_client=http_client)
    assert isinstance(settings, ResendConfig)
    return ResendProvider(settings, http_client=http_client)
