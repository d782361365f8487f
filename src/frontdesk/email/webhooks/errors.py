"""The one exception that every webhook check and parser raises."""

from __future__ import annotations

from typing import Literal

RejectionCode = Literal[
    "signature_missing",
    "signature_invalid",
    "timestamp_outside_tolerance",
    "certificate_url_invalid",
    "certificate_invalid",
    "credentials_invalid",
    "payload_invalid",
]


class WebhookRejected(Exception):
    """A webhook delivery failed verification or parsing; ``code`` names the check.

    ``str()`` is the plain message: what is wrong and what to check. It names headers and
    fields but never contains a secret, an address or a message body, so it is safe to log.
    """

    def __init__(self, code: RejectionCode, message: str) -> None:
        super().__init__(message)
        self.code: RejectionCode = code
        self.message = message
