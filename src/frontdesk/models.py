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
    "EmailMessage",
    "Enquiry",
    "EnquiryActivity",
    "EnquiryTag",
    "Event",
    "Form",
    "FormVersion",
    "Invitation",
    "Job",
    "Membership",
    "MessageRevision",
    "Notification",
    "ObjectScan",
    "OneTimeToken",
    "RateLimitCounter",
    "RefreshToken",
    "StorageLinkUse",
    "StorageSigningKey",
    "StoredObject",
    "User",
    "Workspace",
]
