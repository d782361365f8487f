"""Email providers' event webhooks: signature verification and one event vocabulary.

A route verifies the delivery with the provider's ``verify_*`` function on the raw request,
then parses it with ``parse_*`` into ``ProviderEvent`` values. Both raise
``WebhookRejected``, whose ``code`` names the failed check.
"""

from frontdesk.email.webhooks.errors import RejectionCode, WebhookRejected
from frontdesk.email.webhooks.events import (
    BounceKind,
    EventType,
    Provider,
    ProviderEvent,
    parse_mailgun,
    parse_postmark,
    parse_resend,
    parse_sendgrid,
    parse_ses_sns,
    postmark_event_id,
)
from frontdesk.email.webhooks.sns import (
    FetchCertificate,
    HttpxCertificateFetcher,
    check_certificate_url,
    confirmation_url,
    verify_sns_message,
)
from frontdesk.email.webhooks.verify import (
    DEFAULT_TOLERANCE,
    load_sendgrid_public_key,
    verify_mailgun,
    verify_mailgun_form,
    verify_postmark,
    verify_resend,
    verify_sendgrid,
)

__all__ = [
    "DEFAULT_TOLERANCE",
    "BounceKind",
    "EventType",
    "FetchCertificate",
    "HttpxCertificateFetcher",
    "Provider",
    "ProviderEvent",
    "RejectionCode",
    "WebhookRejected",
    "check_certificate_url",
    "confirmation_url",
    "load_sendgrid_public_key",
    "parse_mailgun",
    "parse_postmark",
    "parse_resend",
    "parse_sendgrid",
    "parse_ses_sns",
    "postmark_event_id",
    "verify_mailgun",
    "verify_mailgun_form",
    "verify_postmark",
    "verify_resend",
    "verify_sendgrid",
    "verify_sns_message",
]
