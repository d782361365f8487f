"""Inbound mail: parsing raw messages and provider webhooks, auto-replies, quotes, bounces.

Nothing here touches the database or the network; the routes and jobs that receive mail
call these functions and store the results.
"""

from frontdesk.email.inbound.automatic import is_automatic
from frontdesk.email.inbound.filenames import safe_filename
from frontdesk.email.inbound.html_text import html_to_text
from frontdesk.email.inbound.parse import (
    DEFAULT_LIMITS,
    InboundAttachment,
    ParsedEmail,
    ParseLimits,
    parse_message,
)
from frontdesk.email.inbound.payloads import (
    InboundPayloadError,
    from_mailgun_route,
    from_postmark_inbound,
    from_sendgrid_inbound,
    from_sns_ses,
)
from frontdesk.email.inbound.quotes import ReplyParts, split_reply
from frontdesk.email.inbound.reports import DeliveryReport, ReportRecipient, parse_report

__all__ = [
    "DEFAULT_LIMITS",
    "DeliveryReport",
    "InboundAttachment",
    "InboundPayloadError",
    "ParseLimits",
    "ParsedEmail",
    "ReplyParts",
    "ReportRecipient",
    "from_mailgun_route",
    "from_postmark_inbound",
    "from_sendgrid_inbound",
    "from_sns_ses",
    "html_to_text",
    "is_automatic",
    "parse_message",
    "parse_report",
    "safe_filename",
    "split_reply",
]
