"""Import every domain's job handlers so that workers know them all."""

from frontdesk.auth import jobs as auth_jobs  # noqa: F401
from frontdesk.conversations import chat_uploads  # noqa: F401
from frontdesk.conversations import fallback as chat_fallback  # noqa: F401
from frontdesk.conversations import jobs as conversation_jobs  # noqa: F401
from frontdesk.core import maintenance  # noqa: F401
from frontdesk.email import events as email_events  # noqa: F401
from frontdesk.email import jobs as email_jobs  # noqa: F401
from frontdesk.email import mailbox as email_mailbox  # noqa: F401
from frontdesk.forms import uploads as form_uploads  # noqa: F401
from frontdesk.payments import delivery as invoice_delivery  # noqa: F401
from frontdesk.payments import jobs as payment_jobs  # noqa: F401
from frontdesk.payments import reminders as invoice_reminders  # noqa: F401
from frontdesk.payments import subscription_jobs  # noqa: F401
from frontdesk.payments.stripe import events as stripe_events  # noqa: F401
from frontdesk.payments.stripe import refunds as stripe_refunds  # noqa: F401
from frontdesk.storage import jobs as storage_jobs  # noqa: F401
from frontdesk.storage import links as storage_links  # noqa: F401
from frontdesk.storage import scanning as storage_scanning  # noqa: F401
