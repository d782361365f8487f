"""Email providers' event webhooks: signature verification and one event vocabulary.

A route verifies the delivery with the provider's ``verify_*`` function on the raw request.
A failed check raises ``WebhookRejected``, whose ``code`` names the check.
"""

from frontdesk.email.webhooks.errors import RejectionCode, WebhookRejected
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
    "FetchCertificate",
    "HttpxCertificateFetcher",
    "RejectionCode",
    "WebhookRejected",
    "check_certificate_url",
    "confirmation_url",
    "load_sendgrid_public_key",
    "verify_mailgun",
    "verify_mailgun_form",
    "verify_postmark",
    "verify_resend",
    "verify_sendgrid",
    "verify_sns_message",
]
