"""Built-in emails that a workspace can replace with a template of the same key.

A workspace template whose key is listed here is used instead of the built-in text, in the
locale nearest to the message's language. It may declare only the variables listed, which
Frontdesk fills in; if it fails to render, the built-in text is sent and a warning logged.
"""

from __future__ import annotations

from typing import Any

REPLACEABLE: dict[str, dict[str, Any]] = {
    "enquiry_acknowledgement": {
        "description": "Sent to a person who submitted a form with an email address.",
        "variables": [
            {"name": "contact_name", "type": "string", "required": False, "sample": "Ada"},
            {"name": "business_name", "type": "string", "sample": "Studio Nine"},
            {"name": "form_name", "type": "string", "sample": "Contact us"},
            {"name": "can_reply", "type": "boolean", "sample": True},
        ],
    },
    "invoice_sent": {
        "description": "Sent with an invoice's PDF when staff send the invoice to a customer.",
        "variables": [
            {"name": "customer_name", "type": "string", "required": False, "sample": "Ada"},
            {"name": "business_name", "type": "string", "sample": "Studio Nine"},
            {"name": "invoice_number", "type": "string", "sample": "INV-2026-0042"},
            {"name": "amount_due", "type": "string", "sample": "420.23 EUR"},
            {"name": "due_date", "type": "string", "required": False, "sample": "2026-12-15"},
            {"name": "payment_link", "type": "string", "sample": "https://example.com/pay/abc"},
            {"name": "message", "type": "string", "required": False, "sample": "Thank you!"},
        ],
    },
    "invoice_reminder": {
        "description": "Sent before or after an unpaid invoice's due date, on the reminder days.",
        "variables": [
            {"name": "customer_name", "type": "string", "required": False, "sample": "Ada"},
            {"name": "business_name", "type": "string", "sample": "Studio Nine"},
            {"name": "invoice_number", "type": "string", "sample": "INV-2026-0042"},
            {"name": "amount_due", "type": "string", "sample": "420.23 EUR"},
            {"name": "due_date", "type": "string", "sample": "2026-12-15"},
            {"name": "days_overdue", "type": "integer", "sample": 3},
            {"name": "payment_link", "type": "string", "sample": "https://example.com/pay/abc"},
        ],
    },
}


def provided_names(key: str) -> set[str] | None:
    """Return the variables Frontdesk fills for built-in email ``key``, or None if not one."""
    entry = REPLACEABLE.get(key)
    if entry is None:
        return None
    return {variable["name"] for variable in entry["variables"]}
