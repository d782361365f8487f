"""Import every table so that ``Base.metadata`` is complete (Alembic, tests)."""

from frontdesk.auth.models import AuthSession, OneTimeToken, RefreshToken, User
from frontdesk.contacts.models import Contact
from frontdesk.conversations.models import (
    CannedResponse,
    ChatSettings,
    ChatVisitor,
    Conversation,
    ConversationMessage,
    ConversationParticipant,
    MessageRevision,
)
from frontdesk.core.db import Base
from frontdesk.core.models import Event, Job, RateLimitCounter
from frontdesk.email.models import EmailMessage
from frontdesk.enquiries.models import Enquiry, EnquiryActivity, EnquiryTag
from frontdesk.forms.models import Form, FormVersion
from frontdesk.notifications.models import Notification
from frontdesk.payments.models import (
    CreditNote,
    Dispute,
    Invoice,
    InvoiceActivity,
    InvoiceLine,
    NumberSequence,
    Payment,
    PaymentSettings,
    PaymentTransition,
    Plan,
    Refund,
    StripeAccount,
    StripeCustomer,
    StripeEvent,
    Subscription,
)
from frontdesk.storage.links import StorageLinkUse, StorageSigningKey
from frontdesk.storage.models import Bucket, StoredObject
from frontdesk.storage.scanning import ObjectScan
from frontdesk.workspaces.models import Invitation, Membership, Workspace

__all__ = [
    "AuthSession",
    "Base",
    "Bucket",
    "CannedResponse",
    "ChatSettings",
    "ChatVisitor",
    "Contact",
    "Conversation",
    "ConversationMessage",
    "ConversationParticipant",
    "CreditNote",
    "Dispute",
    "EmailMessage",
    "Enquiry",
    "EnquiryActivity",
    "EnquiryTag",
    "Event",
    "Form",
    "FormVersion",
    "Invitation",
    "Invoice",
    "InvoiceActivity",
    "InvoiceLine",
    "Job",
    "Membership",
    "MessageRevision",
    "Notification",
    "NumberSequence",
    "ObjectScan",
    "OneTimeToken",
    "Payment",
    "PaymentSettings",
    "PaymentTransition",
    "Plan",
    "RateLimitCounter",
    "RefreshToken",
    "Refund",
    "StorageLinkUse",
    "StorageSigningKey",
    "StoredObject",
    "StripeAccount",
    "StripeCustomer",
    "StripeEvent",
    "Subscription",
    "User",
    "Workspace",
]
