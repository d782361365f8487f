"""Per-endpoint cases of the route matrix (tests/test_route_matrix.py).

``CASES`` has one entry per route, keyed by (method, path template): the access the route
must require, one valid request with its success status, and invalid requests with the 4xx
status and the field that the problem must name. ``EXCLUDED`` lists the routes that the matrix
does not call, each with the reason. The matrix fails for a route that is in neither, so a
new endpoint must add its cases here.

A request value written as ``Ref(name)`` is created by the test just before the request (see
``RESOLVERS`` in test_route_matrix.py). A path parameter that a case does not set is
``Ref(<parameter name>)``: a fresh resource in the caller's workspace.

Callers: ``anonymous``; ``owner``, ``admin`` and ``agent`` of workspace A (verified owner);
``new_owner``, a new unverified owner of a new workspace, for requests that end sessions or
destroy the workspace; ``instance_admin``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

OMIT: Any = object()
"""Marks a request without a body."""

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase"
ORIGIN = "https://studio.example"
NOT_A_UUID = "not-a-uuid"
UNKNOWN_ID = "0190c2d4-0000-7000-8000-000000000000"


@dataclass(frozen=True)
class Ref:
    """A value that the test creates before the request, such as a fresh form's id."""

    name: str


@dataclass(frozen=True)
class Case:
    """One request and the status it must get.

    An invalid case names the ``field`` that the problem must name, or the problem ``code``
    when the problem names no field. ``bug`` marks a case that fails because of a known
    defect on the ``bug_on`` dialects: the test expects the failure there, and fails once
    the case passes, so that the mark is removed with the fix.
    """

    status: int
    caller: str = "owner"
    body: Any = OMIT
    query: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    path: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    content: bytes | None = None
    field: str | None = None
    code: str | None = None
    bug: str | None = None
    bug_on: tuple[str, ...] = ("sqlite", "postgresql")


@dataclass(frozen=True)
class RouteCases:
    """The cases of one route.

    ``access`` is the minimum the route requires: public, user (any signed-in user), agent,
    admin, owner (member roles in the token's workspace) or instance_admin. ``denied`` contains
    requests that pass the route's dependency but that the service must reject: 403 for a
    role rule, 404 for another member's resource.
    """

    access: str
    ok: Case
    invalid: tuple[Case, ...] = ()
    denied: tuple[Case, ...] = ()


def ok(status: int, **request: Any) -> Case:
    return Case(status=status, **request)


def bad(status: int, field: str, **request: Any) -> Case:
    return Case(status=status, field=field, **request)


def bad_token(field: str = "token", **request: Any) -> Case:
    """Build the case of an unknown one-time token: 400 ``invalid_token`` naming its field."""
    return Case(status=400, field=field, code="invalid_token", **request)


FORM_FIELDS: list[dict[str, Any]] = [
    {"key": "name", "type": "text", "label": "Your name", "required": True},
    {"key": "email", "type": "email", "label": "Email"},
    {"key": "message", "type": "long_text", "label": "Message"},
    {"key": "attachment", "type": "file", "label": "Attachment"},
]
PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
RAW_EMAIL = (
    b"From: Camille <camille@example.org>\r\nTo: hello@studio.example\r\n"
    b"Subject: Wedding photos\r\nMessage-ID: <matrix-1@example.org>\r\n\r\nAre you free?\r\n"
)
TEMPLATE_BODY = {
    "key": "welcome",
    "name": "Welcome",
    "variables": [{"name": "first_name", "type": "string", "sample": "Ada"}],
    "subject": "Welcome, {{ first_name }}",
    "body": "<p>Hello {{ first_name }}</p>",
}
PROVIDER_SETTINGS = {
    "kind": "postmark",
    "config": {"server_token": "server-token"},
    "from_address": "Studio <hello@studio.example>",
}
ANSWERS = {"name": "Camille", "email": "camille@example.org", "message": "Wedding photos?"}
ENQUIRY = {
    "message": "Called about wedding photos.",
    "contact": {"name": "Camille", "email": "camille@example.org"},
}
UPLOAD_LINK = {
    "key": "inbox/from-client.txt",
    "expires_in": 600,
    "max_bytes": 1000,
    "content_types": ["text/plain"],
}
CANNED = {
    "shortcut": "greeting",
    "title": "Greeting",
    "body": "Hello {{ contact.name }}, this is {{ member.name }} from {{ workspace.name }}.",
}
PLAN = {"name": "Studio care", "amount": 2500, "currency": "EUR", "interval": "month"}
INVOICE_LINES = [
    {"description": "Wedding photos", "quantity": "2", "unit_price": 60000, "tax_rate": "20"}
]
INVOICE = {"contact_id": Ref("contact_id"), "currency": "EUR", "lines": INVOICE_LINES}
MANUAL_PAYMENT = {"amount": 1000, "method": "bank_transfer", "reference": "TRX-1"}
SIGNUP = {
    "email": Ref("new_email"),
    "password": PASSWORD,
    "full_name": "Ada Lovelace",
    "workspace_name": "Analytical Studio",
}


def cursor(created_at: Any, row_id: Any) -> str:
    """Encode a cursor the way the API does, with any values."""
    raw = json.dumps([created_at, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


LIST_QUERY_ERRORS = (
    bad(422, "limit", query={"limit": 0}),
    bad(422, "limit", query={"limit": 201}),
    bad(422, "cursor", query={"cursor": "not a cursor"}),
    # Well-formed cursors with values that the API never issues: a time without a UTC
    # offset, and a number in place of the row id.
    bad(422, "cursor", query={"cursor": cursor("2026-01-01T00:00:00", UNKNOWN_ID)}),
    bad(422, "cursor", query={"cursor": cursor("2026-01-01T00:00:00+00:00", 5)}),
)


def id_errors(*names: str, caller: str = "owner", **request: Any) -> tuple[Case, ...]:
    """Build one case per path parameter with a malformed id, keeping the others valid."""
    return tuple(
        bad(422, name, caller=caller, path={name: NOT_A_UUID}, **request) for name in names
    )


CASES: dict[tuple[str, str], RouteCases] = {
    # --- Accounts ---------------------------------------------------------------------------
    ("POST", "/api/v1/auth/signup"): RouteCases(
        access="public",
        ok=ok(201, caller="anonymous", body=SIGNUP),
        invalid=(
            bad(422, "email", caller="anonymous", body={**SIGNUP, "email": "not-an-email"}),
            bad(422, "password", caller="anonymous", body={**SIGNUP, "password": "short"}),
            bad(422, "full_name", caller="anonymous", body={**SIGNUP, "full_name": "  "}),
            bad(422, "workspace_name", caller="anonymous", body={**SIGNUP, "workspace_name": None}),
            bad(
                422,
                "invitation_token",
                caller="anonymous",
                body={**SIGNUP, "invitation_token": Ref("invitation_token")},
            ),
            bad(
                422, "default_country", caller="anonymous", body={**SIGNUP, "default_country": "XX"}
            ),
            bad(422, "nickname", caller="anonymous", body={**SIGNUP, "nickname": "ada"}),
            bad(409, "email", caller="anonymous", body={**SIGNUP, "email": Ref("owner_email")}),
            bad_token(
                "invitation_token",
                caller="anonymous",
                body={
                    **{k: v for k, v in SIGNUP.items() if k != "workspace_name"},
                    "invitation_token": "unknown-token",
                },
            ),
        ),
    ),
    ("POST", "/api/v1/auth/token"): RouteCases(
        access="public",
        ok=ok(
            200,
            caller="anonymous",
            body={"grant_type": "password", "email": Ref("owner_email"), "password": PASSWORD},
        ),
        invalid=(
            bad(422, "grant_type", caller="anonymous", body={"grant_type": "magic"}),
            bad(
                422,
                "password",
                caller="anonymous",
                body={"grant_type": "password", "email": Ref("owner_email")},
            ),
            bad(422, "refresh_token", caller="anonymous", body={"grant_type": "refresh_token"}),
            bad(
                422,
                "email",
                caller="anonymous",
                body={"grant_type": "password", "email": "ada\x00@example.com", "password": "x"},
            ),
            bad(
                422,
                "workspace_id",
                caller="anonymous",
                body={
                    "grant_type": "refresh_token",
                    "refresh_token": "unknown",
                    "workspace_id": NOT_A_UUID,
                },
            ),
            bad(422, "body", caller="anonymous", content=b"{not json"),
        ),
    ),
    ("POST", "/api/v1/auth/logout"): RouteCases(
        access="user",
        ok=ok(204, caller="new_owner", body={"all": False}),
        invalid=(
            bad(422, "all", caller="new_owner", body={"all": "sometimes"}),
            bad(422, "everywhere", caller="new_owner", body={"everywhere": True}),
        ),
    ),
    ("GET", "/api/v1/auth/sessions"): RouteCases(access="user", ok=ok(200)),
    ("DELETE", "/api/v1/auth/sessions/{session_id}"): RouteCases(
        access="user",
        ok=ok(204),
        invalid=id_errors("session_id"),
        denied=(Case(404, path={"session_id": Ref("admin_session_id")}),),
    ),
    ("POST", "/api/v1/auth/password-reset"): RouteCases(
        access="public",
        ok=ok(202, caller="anonymous", body={"email": Ref("owner_email")}),
        invalid=(
            bad(422, "email", caller="anonymous", body={"email": ""}),
            bad(422, "email", caller="anonymous", body={}),
            bad(
                422,
                "email",
                caller="anonymous",
                body={"email": "ada\x00@example.com"},
            ),
        ),
    ),
    ("POST", "/api/v1/auth/password-reset/confirm"): RouteCases(
        access="public",
        ok=ok(
            204, caller="anonymous", body={"token": Ref("reset_token"), "password": NEW_PASSWORD}
        ),
        invalid=(
            bad(
                422,
                "password",
                caller="anonymous",
                body={"token": Ref("reset_token"), "password": "short"},
            ),
            bad(422, "token", caller="anonymous", body={"token": "", "password": NEW_PASSWORD}),
            bad_token(
                caller="anonymous", body={"token": "unknown-token", "password": NEW_PASSWORD}
            ),
        ),
    ),
    ("POST", "/api/v1/auth/password"): RouteCases(
        access="user",
        ok=ok(
            204,
            caller="new_owner",
            body={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        ),
        invalid=(
            bad(
                422,
                "current_password",
                caller="new_owner",
                body={"current_password": "wrong password", "new_password": NEW_PASSWORD},
            ),
            bad(
                422,
                "new_password",
                caller="new_owner",
                body={"current_password": PASSWORD, "new_password": "short"},
            ),
        ),
    ),
    ("POST", "/api/v1/auth/verify-email"): RouteCases(
        access="public",
        ok=ok(204, caller="anonymous", body={"token": Ref("verification_token")}),
        invalid=(
            bad(422, "token", caller="anonymous", body={"token": ""}),
            bad(422, "token", caller="anonymous", body={"token": "x" * 201}),
            bad_token(caller="anonymous", body={"token": "unknown-token"}),
        ),
    ),
    ("POST", "/api/v1/auth/verify-email/resend"): RouteCases(
        access="user", ok=ok(202, caller="new_owner")
    ),
    ("GET", "/api/v1/me"): RouteCases(access="user", ok=ok(200)),
    ("PATCH", "/api/v1/me"): RouteCases(
        access="user",
        ok=ok(200, body={"full_name": "Ada Lovelace", "locale": "pt_BR"}),
        invalid=(
            bad(422, "locale", body={"locale": "not a locale!"}),
            bad(422, "full_name", body={"full_name": None}),
            bad(422, "full_name", body={"full_name": "line\nbreak"}),
            bad(422, "email", body={"email": "new@example.com"}),
        ),
    ),
    # --- Workspaces, members, invitations ---------------------------------------------------
    ("GET", "/api/v1/workspace"): RouteCases(access="agent", ok=ok(200)),
    ("PATCH", "/api/v1/workspace"): RouteCases(
        access="admin",
        ok=ok(200, body={"name": "Studio A", "reply_to_email": "desk@studio.example"}),
        invalid=(
            bad(422, "default_country", body={"default_country": "XX"}),
            bad(422, "reply_to_email", body={"reply_to_email": "not-an-email"}),
            bad(422, "name", body={"name": None}),
            bad(422, "name", body={"name": ""}),
        ),
    ),
    ("DELETE", "/api/v1/workspace"): RouteCases(access="owner", ok=ok(204, caller="new_owner")),
    ("GET", "/api/v1/workspaces"): RouteCases(access="user", ok=ok(200)),
    ("POST", "/api/v1/workspace/transfer-ownership"): RouteCases(
        access="owner",
        ok=ok(200, caller="new_owner", body={"user_id": Ref("user_id")}),
        invalid=(
            bad(422, "user_id", caller="new_owner", body={"user_id": NOT_A_UUID}),
            bad(422, "user_id", caller="new_owner", body={"user_id": Ref("caller_id")}),
            bad(422, "user_id", caller="new_owner", body={}),
        ),
    ),
    ("GET", "/api/v1/members"): RouteCases(access="agent", ok=ok(200)),
    ("PATCH", "/api/v1/members/{user_id}"): RouteCases(
        access="admin",
        ok=ok(200, body={"role": "admin"}),
        invalid=(
            bad(422, "role", body={"role": "king"}),
            bad(422, "role", body={}),
            *id_errors("user_id", body={"role": "admin"}),
        ),
        denied=(
            Case(403, caller="admin", path={"user_id": Ref("owner_id")}, body={"role": "agent"}),
            Case(403, caller="admin", body={"role": "owner"}),
        ),
    ),
    ("DELETE", "/api/v1/members/{user_id}"): RouteCases(
        access="agent",
        ok=ok(204),
        invalid=id_errors("user_id"),
        denied=(
            Case(403, caller="agent"),
            Case(403, caller="admin", path={"user_id": Ref("owner_id")}),
        ),
    ),
    ("POST", "/api/v1/invitations"): RouteCases(
        access="admin",
        ok=ok(201, body={"email": Ref("new_email"), "role": "agent"}),
        invalid=(
            bad(422, "email", body={"email": "not-an-email", "role": "agent"}),
            bad(422, "role", body={"email": Ref("new_email"), "role": "boss"}),
            bad(422, "email", body={"role": "agent"}),
        ),
        denied=(
            Case(403, caller="admin", body={"email": Ref("new_email"), "role": "owner"}),
            Case(403, caller="new_owner", body={"email": Ref("new_email"), "role": "agent"}),
        ),
    ),
    ("GET", "/api/v1/invitations"): RouteCases(access="admin", ok=ok(200)),
    ("GET", "/api/v1/invitations/lookup"): RouteCases(
        access="public",
        ok=ok(200, caller="anonymous", query={"token": Ref("invitation_token")}),
        invalid=(
            bad(422, "token", caller="anonymous"),
            bad(422, "token", caller="anonymous", query={"token": ""}),
            bad_token(caller="anonymous", query={"token": "unknown-token"}),
        ),
    ),
    ("POST", "/api/v1/invitations/accept"): RouteCases(
        access="user",
        ok=ok(200, caller="new_owner", body={"token": Ref("invitation_token")}),
        invalid=(
            bad(422, "token", caller="new_owner", body={"token": ""}),
            bad(422, "token", caller="new_owner", body={}),
            bad_token(caller="new_owner", body={"token": "unknown-token"}),
        ),
    ),
    ("POST", "/api/v1/invitations/{invitation_id}/resend"): RouteCases(
        access="admin",
        ok=ok(200),
        invalid=id_errors("invitation_id"),
        denied=(Case(403, caller="admin", path={"invitation_id": Ref("owner_invitation_id")}),),
    ),
    ("DELETE", "/api/v1/invitations/{invitation_id}"): RouteCases(
        access="admin",
        ok=ok(204),
        invalid=id_errors("invitation_id"),
        denied=(Case(403, caller="admin", path={"invitation_id": Ref("owner_invitation_id")}),),
    ),
    # --- Contacts and enquiries ---------------------------------------------------------------
    ("GET", "/api/v1/contacts"): RouteCases(
        access="agent",
        ok=ok(200, query={"q": "example", "limit": 10}),
        invalid=(
            bad(422, "q", query={"q": "x" * 201}),
            bad(422, "q", query={"q": "a\x00b"}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("GET", "/api/v1/contacts/{contact_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("contact_id")
    ),
    ("PATCH", "/api/v1/contacts/{contact_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"name": "Camille Martin", "phone": "+33 1 42 68 53 00", "notes": "VIP"}),
        invalid=(
            bad(422, "email", body={"email": "not-an-email"}),
            bad(422, "phone", body={"phone": "call me maybe"}),
            bad(422, "notes", body={"notes": "x" * 20_001}),
            bad(422, "nickname", body={"nickname": "Cam"}),
            *id_errors("contact_id", body={"name": "Camille"}),
        ),
    ),
    ("GET", "/api/v1/enquiries"): RouteCases(
        access="agent",
        ok=ok(200, query={"status": "new,open", "assignee": "none", "tag": "VIP"}),
        invalid=(
            bad(422, "status", query={"status": "bogus"}),
            bad(422, "assignee", query={"assignee": "bob"}),
            bad(422, "created_after", query={"created_after": "yesterday"}),
            bad(
                422,
                "created_after",
                query={"created_after": "0001-01-01T00:00:00+01:00"},
            ),
            bad(
                422,
                "created_before",
                query={"created_before": "9999-12-31T23:59:59-01:00"},
            ),
            bad(422, "q", query={"q": "a\x00b"}),
            bad(422, "source", query={"source": "a\x00b"}),
            bad(422, "contact_id", query={"contact_id": NOT_A_UUID}),
            bad(422, "tag", query={"tag": "x" * 51}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("POST", "/api/v1/enquiries"): RouteCases(
        access="agent",
        ok=ok(
            201,
            body={**ENQUIRY, "tags": ["phone"]},
        ),
        invalid=(
            bad(422, "message", body={**ENQUIRY, "message": ""}),
            bad(422, "status", body={**ENQUIRY, "status": "bogus"}),
            bad(422, "assignee_id", body={**ENQUIRY, "assignee_id": UNKNOWN_ID}),
            bad(422, "contact.email", body={**ENQUIRY, "contact": {"email": "not-an-email"}}),
            bad(422, "contact", body={"message": "Hello"}),
            bad(422, "tags.0", body={**ENQUIRY, "tags": ["x" * 51]}),
        ),
    ),
    ("GET", "/api/v1/enquiries/{enquiry_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("enquiry_id")
    ),
    ("PATCH", "/api/v1/enquiries/{enquiry_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"status": "open", "assignee_id": Ref("caller_id")}),
        invalid=(
            bad(422, "status", body={"status": "bogus"}),
            bad(422, "assignee_id", body={"assignee_id": UNKNOWN_ID}),
            bad(422, "subject", body={"subject": "x" * 301}),
            *id_errors("enquiry_id", body={"status": "open"}),
        ),
    ),
    ("POST", "/api/v1/enquiries/{enquiry_id}/tags"): RouteCases(
        access="agent",
        ok=ok(200, body={"tags": ["VIP", "wedding"]}),
        invalid=(
            bad(422, "tags", body={"tags": []}),
            bad(422, "tags.0", body={"tags": ["x" * 51]}),
            bad(422, "tags", body={"tags": "vip"}),
            *id_errors("enquiry_id", body={"tags": ["vip"]}),
        ),
    ),
    ("DELETE", "/api/v1/enquiries/{enquiry_id}/tags/{tag}"): RouteCases(
        access="agent",
        ok=ok(200),
        invalid=(bad(422, "tag", path={"tag": "x" * 51}), *id_errors("enquiry_id")),
    ),
    ("GET", "/api/v1/enquiries/{enquiry_id}/timeline"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("enquiry_id")
    ),
    ("POST", "/api/v1/enquiries/{enquiry_id}/conversation"): RouteCases(
        access="agent", ok=ok(201), invalid=id_errors("enquiry_id")
    ),
    # --- Conversations and canned responses ---------------------------------------------------
    ("GET", "/api/v1/conversations"): RouteCases(
        access="agent",
        ok=ok(200, query={"status": "open,pending", "assignee": "none", "unread": "true"}),
        invalid=(
            bad(422, "status", query={"status": "closed"}),
            bad(422, "assignee", query={"assignee": "bob"}),
            bad(422, "channel", query={"channel": "fax"}),
            bad(422, "contact_id", query={"contact_id": NOT_A_UUID}),
            bad(422, "unread", query={"unread": "perhaps"}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("POST", "/api/v1/conversations"): RouteCases(
        access="agent",
        ok=ok(201, body={"channel": "email", "contact_id": Ref("contact_id"), "subject": "Hi"}),
        invalid=(
            bad(422, "channel", body={"channel": "fax"}),
            bad(422, "contact_id", body={"channel": "chat", "contact_id": UNKNOWN_ID}),
            bad(422, "enquiry_id", body={"channel": "chat", "enquiry_id": UNKNOWN_ID}),
            bad(422, "subject", body={"channel": "chat", "subject": "x" * 301}),
            bad(422, "visitor_id", body={"channel": "chat", "visitor_id": UNKNOWN_ID}),
        ),
    ),
    ("GET", "/api/v1/conversations/unread"): RouteCases(access="agent", ok=ok(200)),
    ("GET", "/api/v1/conversations/search"): RouteCases(
        access="agent",
        ok=ok(200, query={"q": 'wedding "photos AND body:x', "channel": "chat"}),
        invalid=(
            bad(422, "q", query={}),
            bad(422, "channel", query={"q": "x", "channel": "fax"}),
            bad(422, "conversation_id", query={"q": "x", "conversation_id": NOT_A_UUID}),
            bad(422, "from", query={"q": "x", "from": "yesterday"}),
            bad(422, "to", query={"q": "x", "to": "9999-12-31T23:59:59-01:00"}),
            bad(422, "limit", query={"q": "x", "limit": 0}),
            bad(422, "cursor", query={"q": "x", "cursor": "not a cursor"}),
        ),
    ),
    ("GET", "/api/v1/conversations/{conversation_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("conversation_id")
    ),
    ("PATCH", "/api/v1/conversations/{conversation_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"status": "pending", "assignee_id": Ref("caller_id")}),
        invalid=(
            bad(422, "status", body={"status": "closed"}),
            bad(422, "status", body={"status": None}),
            bad(422, "snoozed_until", body={"status": "snoozed"}),
            bad(422, "snoozed_until", body={"status": "snoozed", "snoozed_until": "2000-01-01"}),
            bad(422, "snoozed_until", body={"snoozed_until": "2999-01-01T00:00:00Z"}),
            bad(422, "assignee_id", body={"assignee_id": UNKNOWN_ID}),
            bad(422, "subject", body={"subject": "x" * 301}),
            *id_errors("conversation_id", body={"status": "open"}),
        ),
    ),
    ("GET", "/api/v1/conversations/{conversation_id}/messages"): RouteCases(
        access="agent",
        ok=ok(200, query={"before": 10, "limit": 5}),
        invalid=(
            bad(422, "before", query={"before": -1}),
            bad(422, "after", query={"before": 3, "after": 1}),
            bad(422, "around", query={"around": "middle"}),
            bad(422, "around", query={"around": UNKNOWN_ID}),
            bad(422, "limit", query={"limit": 201}),
            *id_errors("conversation_id"),
        ),
    ),
    ("POST", "/api/v1/conversations/{conversation_id}/messages"): RouteCases(
        access="agent",
        ok=ok(201, body={"body": "Hello", "kind": "note", "attachments": [Ref("object_id")]}),
        invalid=(
            bad(422, "body", body={"body": "  "}),
            bad(422, "body", body={"body": "x" * 10_001}),
            bad(422, "kind", body={"body": "Hi", "kind": "system"}),
            bad(422, "client_message_id", body={"body": "Hi", "client_message_id": ""}),
            bad(422, "attachments.0", body={"body": "Hi", "attachments": [UNKNOWN_ID]}),
            *id_errors("conversation_id", body={"body": "Hi"}),
        ),
    ),
    ("PATCH", "/api/v1/conversations/{conversation_id}/messages/{message_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"body": "Edited text"}),
        invalid=(
            bad(422, "body", body={"body": " "}),
            bad(422, "body", body={}),
            *id_errors("conversation_id", "message_id", body={"body": "Edited"}),
        ),
        denied=(Case(403, caller="agent", body={"body": "Not mine"}),),
    ),
    ("DELETE", "/api/v1/conversations/{conversation_id}/messages/{message_id}"): RouteCases(
        access="agent",
        ok=ok(200),
        invalid=id_errors("conversation_id", "message_id"),
        denied=(Case(403, caller="agent"),),
    ),
    ("GET", "/api/v1/conversations/{conversation_id}/messages/{message_id}/revisions"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("conversation_id", "message_id")
    ),
    ("POST", "/api/v1/conversations/{conversation_id}/read"): RouteCases(
        access="agent",
        ok=ok(200, body={"seq": 1}),
        invalid=(
            bad(422, "seq", body={"seq": -1}),
            bad(422, "seq", body={}),
            *id_errors("conversation_id", body={"seq": 1}),
        ),
    ),
    ("GET", "/api/v1/canned-responses"): RouteCases(
        access="agent",
        ok=ok(200, query={"q": "gr"}),
        invalid=(bad(422, "q", query={"q": "x" * 51}),),
    ),
    ("POST", "/api/v1/canned-responses"): RouteCases(
        access="agent",
        ok=ok(201, body=CANNED),
        invalid=(
            bad(422, "shortcut", body={**CANNED, "shortcut": "two words"}),
            bad(422, "title", body={**CANNED, "title": "  "}),
            bad(422, "body", body={**CANNED, "body": "Hi {{ customer }}"}),
            bad(422, "body", body={**CANNED, "body": "Hi {% if %}"}),
            bad(409, "shortcut", body={**CANNED, "shortcut": Ref("taken_shortcut")}),
        ),
    ),
    ("GET", "/api/v1/canned-responses/{canned_response_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("canned_response_id")
    ),
    ("PATCH", "/api/v1/canned-responses/{canned_response_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"title": "Warm greeting", "body": "Dear {{ contact.name }},"}),
        invalid=(
            bad(422, "body", body={"body": "{{ contact.name "}),
            bad(422, "shortcut", body={"shortcut": None}),
            bad(409, "shortcut", body={"shortcut": Ref("taken_shortcut")}),
            *id_errors("canned_response_id", body={"title": "x"}),
        ),
    ),
    ("DELETE", "/api/v1/canned-responses/{canned_response_id}"): RouteCases(
        access="agent", ok=ok(204), invalid=id_errors("canned_response_id")
    ),
    ("POST", "/api/v1/canned-responses/{canned_response_id}/render"): RouteCases(
        access="agent",
        ok=ok(200, body={"conversation_id": Ref("conversation_id")}),
        invalid=(
            bad(422, "conversation_id", body={"conversation_id": UNKNOWN_ID}),
            bad(422, "conversation_id", body={"conversation_id": NOT_A_UUID}),
            bad(
                422,
                "body",
                path={"canned_response_id": Ref("broken_canned_response_id")},
                body={"conversation_id": Ref("conversation_id")},
            ),
            *id_errors("canned_response_id", body={"conversation_id": UNKNOWN_ID}),
        ),
    ),
    # --- Forms --------------------------------------------------------------------------------
    ("POST", "/api/v1/forms"): RouteCases(
        access="admin",
        ok=ok(201, body={"name": "Contact us", "fields": FORM_FIELDS, "allowed_origins": [ORIGIN]}),
        invalid=(
            bad(422, "name", body={"name": "", "fields": FORM_FIELDS}),
            bad(
                422,
                "fields.0.key",
                body={"name": "Contact", "fields": [{**FORM_FIELDS[0], "key": "Bad Key"}]},
            ),
            bad(
                422,
                "fields.1.key",
                body={"name": "Contact", "fields": [FORM_FIELDS[0], FORM_FIELDS[0]]},
            ),
            bad(
                422,
                "fields.0.type",
                body={"name": "Contact", "fields": [{**FORM_FIELDS[0], "type": "video"}]},
            ),
            bad(
                422,
                "redirect_url",
                body={"name": "Contact", "fields": FORM_FIELDS, "redirect_url": "javascript:x"},
            ),
            bad(422, "language", body={"name": "Contact", "fields": FORM_FIELDS, "language": "??"}),
            bad(
                422,
                "allowed_origins.0",
                body={"name": "Contact", "fields": FORM_FIELDS, "allowed_origins": ["nope"]},
            ),
        ),
    ),
    ("GET", "/api/v1/forms"): RouteCases(access="agent", ok=ok(200)),
    ("GET", "/api/v1/forms/{form_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("form_id")
    ),
    ("PATCH", "/api/v1/forms/{form_id}"): RouteCases(
        access="admin",
        ok=ok(200, body={"name": "Say hello", "success_message": "Thanks!"}),
        invalid=(
            bad(422, "name", body={"name": None}),
            bad(422, "fields", body={"fields": []}),
            bad(422, "redirect_url", body={"redirect_url": "ftp://studio.example"}),
            *id_errors("form_id", body={"name": "Say hello"}),
        ),
    ),
    ("DELETE", "/api/v1/forms/{form_id}"): RouteCases(
        access="admin", ok=ok(204), invalid=id_errors("form_id")
    ),
    ("GET", "/api/v1/forms/{form_id}/versions"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("form_id")
    ),
    # --- Storage ------------------------------------------------------------------------------
    ("POST", "/api/v1/storage/buckets"): RouteCases(
        access="admin",
        ok=ok(201, body={"name": Ref("bucket_name"), "allowed_content_types": ["image/*"]}),
        invalid=(
            bad(422, "name", body={"name": "Bad Name"}),
            bad(422, "name", body={"name": "-dash-first"}),
            bad(422, "visibility", body={"name": "photos", "visibility": "secret"}),
            bad(422, "max_object_bytes", body={"name": "photos", "max_object_bytes": 0}),
            bad(
                422,
                "allowed_content_types.0",
                body={"name": "pics", "allowed_content_types": ["png"]},
            ),
        ),
    ),
    ("GET", "/api/v1/storage/buckets"): RouteCases(access="agent", ok=ok(200)),
    ("GET", "/api/v1/storage/buckets/{bucket_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("bucket_id")
    ),
    ("PATCH", "/api/v1/storage/buckets/{bucket_id}"): RouteCases(
        access="admin",
        ok=ok(200, body={"visibility": "public", "max_object_bytes": 1000}),
        invalid=(
            bad(422, "visibility", body={"visibility": None}),
            bad(422, "allowed_content_types.0", body={"allowed_content_types": ["*/*/*"]}),
            *id_errors("bucket_id", body={"visibility": "public"}),
        ),
    ),
    ("DELETE", "/api/v1/storage/buckets/{bucket_id}"): RouteCases(
        access="admin", ok=ok(204), invalid=id_errors("bucket_id")
    ),
    ("POST", "/api/v1/storage/buckets/{bucket_id}/objects"): RouteCases(
        access="agent",
        ok=ok(
            201,
            query={"key": "notes/hello world?.txt"},
            content=b"hello",
            headers={"Content-Type": "text/plain"},
        ),
        invalid=(
            bad(422, "key", content=b"hello", headers={"Content-Type": "text/plain"}),
            *(
                bad(
                    422,
                    "key",
                    query={"key": key},
                    content=b"x",
                    headers={"Content-Type": "text/plain"},
                )
                for key in ("", "/etc/passwd", "a/../b", "a//b", "a\\b", "tab\tkey")
            ),
            *id_errors(
                "bucket_id",
                query={"key": "a.txt"},
                content=b"x",
                headers={"Content-Type": "text/plain"},
            ),
        ),
    ),
    ("GET", "/api/v1/storage/buckets/{bucket_id}/objects"): RouteCases(
        access="agent",
        ok=ok(200, query={"prefix": "notes/"}),
        invalid=(
            bad(422, "limit", query={"limit": 0}),
            bad(422, "limit", query={"limit": 201}),
            bad(422, "cursor", query={"cursor": "not a cursor"}),
            bad(422, "cursor", query={"cursor": cursor(5, UNKNOWN_ID)}),
            bad(422, "cursor", query={"cursor": cursor("a", 5)}),
            *id_errors("bucket_id"),
        ),
    ),
    ("GET", "/api/v1/storage/objects/{object_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("object_id")
    ),
    ("PATCH", "/api/v1/storage/objects/{object_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"metadata": {"source": "scanner"}}),
        invalid=(
            bad(422, "metadata", body={"metadata": {f"k{i}": "v" for i in range(21)}}),
            bad(422, "metadata", body={"metadata": {"big": "x" * 1100}}),
            bad(422, "metadata.a", body={"metadata": {"a": 1}}),
            *id_errors("object_id", body={"metadata": {}}),
        ),
    ),
    ("DELETE", "/api/v1/storage/objects/{object_id}"): RouteCases(
        access="agent", ok=ok(204), invalid=id_errors("object_id")
    ),
    ("POST", "/api/v1/storage/objects/{object_id}/move"): RouteCases(
        access="agent",
        ok=ok(200, body={"key": "moved/file.txt"}),
        invalid=(
            bad(422, "key", body={"key": "../escape"}),
            bad(422, "key", body={}),
            bad(422, "bucket_id", body={"key": "a.txt", "bucket_id": UNKNOWN_ID}),
            *id_errors("object_id", body={"key": "a.txt"}),
        ),
    ),
    ("POST", "/api/v1/storage/objects/{object_id}/copy"): RouteCases(
        access="agent",
        ok=ok(201, body={"key": "copies/file.txt"}),
        invalid=(
            bad(422, "key", body={"key": "a/./b"}),
            bad(422, "bucket_id", body={"key": "a.txt", "bucket_id": NOT_A_UUID}),
            *id_errors("object_id", body={"key": "a.txt"}),
        ),
    ),
    ("GET", "/api/v1/storage/objects/{object_id}/content"): RouteCases(
        access="agent",
        ok=ok(206, headers={"Range": "bytes=0-1"}),
        invalid=(
            Case(status=416, code="range_not_satisfiable", headers={"Range": "bytes=900-"}),
            *id_errors("object_id"),
        ),
    ),
    ("GET", "/api/v1/storage/usage"): RouteCases(access="agent", ok=ok(200)),
    # --- Notifications ------------------------------------------------------------------------
    ("GET", "/api/v1/notifications"): RouteCases(
        access="agent",
        ok=ok(200, query={"unread": "true", "limit": 5}),
        invalid=(bad(422, "unread", query={"unread": "perhaps"}), *LIST_QUERY_ERRORS),
    ),
    ("POST", "/api/v1/notifications/read-all"): RouteCases(access="agent", ok=ok(200)),
    ("GET", "/api/v1/notifications/preferences"): RouteCases(access="agent", ok=ok(200)),
    ("PUT", "/api/v1/notifications/preferences"): RouteCases(
        access="agent",
        ok=ok(200, body={"enquiry.assigned": {"email": False}}),
        invalid=(
            bad(422, "enquiry.deleted", body={"enquiry.deleted": {"email": True}}),
            bad(422, "enquiry.created.sms", body={"enquiry.created": {"sms": True}}),
            bad(422, "enquiry.created.email", body={"enquiry.created": {"email": "yes"}}),
            bad(422, "body", body=["enquiry.created"]),
        ),
    ),
    ("POST", "/api/v1/notifications/{notification_id}/read"): RouteCases(
        access="agent",
        ok=ok(200),
        invalid=id_errors("notification_id"),
        denied=(Case(404, path={"notification_id": Ref("admin_notification_id")}),),
    ),
    # --- Email provider and suppressions -----------------------------------------------------
    ("GET", "/api/v1/email/provider"): RouteCases(access="admin", ok=ok(200)),
    ("PUT", "/api/v1/email/provider"): RouteCases(
        access="admin",
        ok=ok(200, body=PROVIDER_SETTINGS),
        invalid=(
            bad(422, "kind", body={**PROVIDER_SETTINGS, "kind": "pigeon"}),
            bad(422, "config.server_token", body={**PROVIDER_SETTINGS, "config": {}}),
            bad(422, "from_address", body={**PROVIDER_SETTINGS, "from_address": "studio"}),
            bad(
                422,
                "config.api_base_url",
                body={
                    **PROVIDER_SETTINGS,
                    "config": {"server_token": "t", "api_base_url": "http://127.0.0.1:9"},
                },
            ),
            bad(422, "track_opens", body={**PROVIDER_SETTINGS, "track_opens": "often"}),
        ),
    ),
    ("DELETE", "/api/v1/email/provider"): RouteCases(access="admin", ok=ok(204)),
    # --- Stripe keys ---------------------------------------------------------------------------
    # --- Invoices, credit notes and manual payments -------------------------------------------
    ("GET", "/api/v1/payments/settings"): RouteCases(access="agent", ok=ok(200)),
    ("PUT", "/api/v1/payments/settings"): RouteCases(
        access="admin",
        ok=ok(200, body={"payment_terms_days": 14, "business_details": {"name": "Studio"}}),
        invalid=(
            bad(422, "invoice_number_pattern", body={"invoice_number_pattern": "INV-{YYYY}"}),
            bad(422, "credit_note_number_pattern", body={"credit_note_number_pattern": "{x}{seq}"}),
            bad(422, "default_currency", body={"default_currency": "XXX"}),
            bad(422, "payment_terms_days", body={"payment_terms_days": -1}),
            bad(422, "reminder_days", body={"reminder_days": [3, 3]}),
            bad(422, "branding.color", body={"branding": {"color": "red"}}),
            bad(422, "branding.logo_object_id", body={"branding": {"logo_object_id": UNKNOWN_ID}}),
            bad(422, "business_details.vat", body={"business_details": {"vat": "1"}}),
            bad(422, "business_details.email", body={"business_details": {"email": "billing"}}),
        ),
    ),
    ("GET", "/api/v1/invoices"): RouteCases(
        access="agent",
        ok=ok(200, query={"status": "draft,open"}),
        invalid=(
            bad(422, "status", query={"status": "pending"}),
            bad(422, "contact_id", query={"contact_id": NOT_A_UUID}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("POST", "/api/v1/invoices"): RouteCases(
        access="agent",
        ok=ok(201, body=INVOICE),
        invalid=(
            bad(422, "contact_id", body={**INVOICE, "contact_id": UNKNOWN_ID}),
            bad(422, "contact_id", body={"lines": INVOICE_LINES}),
            bad(422, "enquiry_id", body={**INVOICE, "enquiry_id": UNKNOWN_ID}),
            bad(422, "currency", body={**INVOICE, "currency": "EURO"}),
            bad(
                422,
                "customer_overrides.email",
                body={**INVOICE, "customer_overrides": {"email": "bad"}},
            ),
            bad(
                422,
                "lines.0.quantity",
                body={**INVOICE, "lines": [{**INVOICE_LINES[0], "quantity": "-1"}]},
            ),
            bad(
                422,
                "lines.0.tax_rate",
                body={**INVOICE, "lines": [{**INVOICE_LINES[0], "tax_rate": "120"}]},
            ),
            bad(
                422,
                "lines.0.unit_price",
                body={**INVOICE, "lines": [{**INVOICE_LINES[0], "unit_price": 1.5}]},
            ),
            bad(
                422,
                "discount.value",
                body={**INVOICE, "discount": {"type": "percent", "value": "101"}},
            ),
        ),
    ),
    ("POST", "/api/v1/enquiries/{enquiry_id}/invoice"): RouteCases(
        access="agent",
        ok=ok(201, body={"lines": INVOICE_LINES}),
        invalid=(
            *id_errors("enquiry_id", body={}),
            bad(
                422,
                "lines.0.description",
                body={"lines": [{**INVOICE_LINES[0], "description": ""}]},
            ),
            bad(422, "contact_id", body={"contact_id": UNKNOWN_ID}),
        ),
    ),
    ("GET", "/api/v1/invoices/{invoice_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("invoice_id")
    ),
    ("PATCH", "/api/v1/invoices/{invoice_id}"): RouteCases(
        access="agent",
        ok=ok(200, body={"notes": "Thank you!", "lines": INVOICE_LINES * 2}),
        invalid=(
            *id_errors("invoice_id", body={}),
            bad(
                422,
                "lines.1.quantity",
                body={"lines": [INVOICE_LINES[0], {**INVOICE_LINES[0], "quantity": "x"}]},
            ),
            bad(422, "contact_id", body={"contact_id": None}),
            bad(422, "contact_id", body={"contact_id": UNKNOWN_ID}),
            Case(
                409,
                code="invoice_not_draft",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={"notes": "x"},
            ),
        ),
    ),
    ("DELETE", "/api/v1/invoices/{invoice_id}"): RouteCases(
        access="agent",
        ok=ok(204),
        invalid=(
            *id_errors("invoice_id"),
            Case(409, code="invoice_not_draft", path={"invoice_id": Ref("issued_invoice_id")}),
        ),
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/issue"): RouteCases(
        access="agent",
        ok=ok(200, body={}),
        invalid=(
            *id_errors("invoice_id", body={}),
            bad(422, "due_date", body={"issue_date": "2026-02-01", "due_date": "2026-01-01"}),
            bad(422, "issue_date", body={"issue_date": "soon"}),
            Case(
                409,
                code="invoice_not_draft",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={},
            ),
        ),
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/void"): RouteCases(
        access="admin",
        ok=ok(200, path={"invoice_id": Ref("issued_invoice_id")}),
        invalid=(
            *id_errors("invoice_id"),
            Case(409, code="invoice_not_issued", path={"invoice_id": Ref("draft_invoice_id")}),
        ),
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/mark-uncollectible"): RouteCases(
        access="admin",
        ok=ok(200, path={"invoice_id": Ref("issued_invoice_id")}),
        invalid=(
            *id_errors("invoice_id"),
            Case(409, code="invoice_not_collectible", path={"invoice_id": Ref("draft_invoice_id")}),
        ),
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/timeline"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("invoice_id")
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/credit-notes"): RouteCases(
        access="agent",
        ok=ok(
            201,
            path={"invoice_id": Ref("issued_invoice_id")},
            body={"amount": 1000, "reason": "Goodwill"},
        ),
        invalid=(
            *id_errors("invoice_id", body={"amount": 1000}),
            bad(422, "amount", path={"invoice_id": Ref("issued_invoice_id")}, body={"amount": 0}),
            bad(
                422, "amount", path={"invoice_id": Ref("issued_invoice_id")}, body={"amount": 10**9}
            ),
            Case(409, code="invoice_not_issued", body={"amount": 1000}),
        ),
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/credit-notes"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("invoice_id")
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/payments"): RouteCases(
        access="agent",
        ok=ok(201, path={"invoice_id": Ref("issued_invoice_id")}, body=MANUAL_PAYMENT),
        invalid=(
            *id_errors("invoice_id", body=MANUAL_PAYMENT),
            bad(
                422,
                "amount",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={**MANUAL_PAYMENT, "amount": 0},
            ),
            bad(
                422,
                "amount",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={**MANUAL_PAYMENT, "amount": 10**9},
            ),
            bad(
                422,
                "method",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={**MANUAL_PAYMENT, "method": "cheque"},
            ),
            bad(
                422,
                "paid_on",
                path={"invoice_id": Ref("issued_invoice_id")},
                body={**MANUAL_PAYMENT, "paid_on": "2999-01-01"},
            ),
            Case(409, code="invoice_not_issued", body=MANUAL_PAYMENT),
        ),
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/payments"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("invoice_id")
    ),
    ("GET", "/api/v1/payments/{payment_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("payment_id")
    ),
    ("POST", "/api/v1/payments/{payment_id}/refunds"): RouteCases(
        access="agent",
        ok=ok(201, body={"amount": 1000, "reason": "Partial refund"}),
        invalid=(
            *id_errors("payment_id", body={}),
            bad(422, "amount", body={"amount": 0}),
            bad(422, "amount", body={"amount": 10**9}),
            Case(
                409,
                code="payment_not_refundable",
                path={"payment_id": Ref("pending_payment_id")},
                body={},
            ),
        ),
    ),
    ("POST", "/api/v1/payments/{payment_id}/cancel"): RouteCases(
        access="agent",
        ok=ok(200, path={"payment_id": Ref("pending_payment_id")}),
        invalid=(
            *id_errors("payment_id"),
            Case(409, code="payment_not_pending"),
        ),
    ),
    ("POST", "/api/v1/payments/{payment_id}/confirm"): RouteCases(
        access="agent",
        ok=ok(200, path={"payment_id": Ref("pending_payment_id")}, body={}),
        invalid=(
            *id_errors("payment_id", body={}),
            bad(
                422,
                "paid_on",
                path={"payment_id": Ref("pending_payment_id")},
                body={"paid_on": "2999-01-01"},
            ),
            Case(409, code="payment_not_pending", body={}),
        ),
    ),
    # --- Invoice PDFs and sending -----------------------------------------------------------
    ("GET", "/api/v1/invoices/{invoice_id}/pdf"): RouteCases(
        access="agent",
        ok=ok(200, path={"invoice_id": Ref("issued_invoice_id")}),
        invalid=(
            *id_errors("invoice_id"),
            Case(409, code="invoice_not_issued", path={"invoice_id": Ref("draft_invoice_id")}),
        ),
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/send"): RouteCases(
        access="agent",
        ok=ok(
            202,
            path={"invoice_id": Ref("issued_invoice_id")},
            body={"to": "accounts@example.com", "message": "Thank you for your order."},
        ),
        invalid=(
            *id_errors("invoice_id", body={}),
            bad(422, "to", path={"invoice_id": Ref("issued_invoice_id")}, body={"to": "nope"}),
            bad(422, "message", path={"invoice_id": Ref("issued_invoice_id")}, body={"message": 5}),
            Case(
                409,
                code="invoice_not_issued",
                path={"invoice_id": Ref("draft_invoice_id")},
                body={},
            ),
        ),
    ),
    ("GET", "/api/v1/payments/stripe"): RouteCases(access="admin", ok=ok(200)),
    ("DELETE", "/api/v1/payments/stripe"): RouteCases(access="admin", ok=ok(204)),
    # --- Plans and subscriptions -----------------------------------------------------------
    ("GET", "/api/v1/plans"): RouteCases(
        access="agent",
        ok=ok(200, query={"include_archived": "true"}),
        invalid=(bad(422, "include_archived", query={"include_archived": "maybe"}),),
    ),
    ("POST", "/api/v1/plans"): RouteCases(
        access="admin",
        ok=ok(201, body=PLAN),
        invalid=(
            bad(422, "interval_count", body={**PLAN, "interval": "year", "interval_count": 4}),
            bad(422, "interval", body={**PLAN, "interval": "day"}),
            bad(422, "amount", body={**PLAN, "amount": 0}),
            bad(422, "currency", body={**PLAN, "currency": "XYZ"}),
            bad(422, "tax_rate", body={**PLAN, "tax_rate": "abc"}),
            bad(422, "trial_days", body={**PLAN, "trial_days": 731}),
            bad(422, "name", body={**PLAN, "name": "  "}),
            bad(422, "price", body={**PLAN, "price": 10}),
        ),
    ),
    ("GET", "/api/v1/plans/{plan_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("plan_id")
    ),
    ("PATCH", "/api/v1/plans/{plan_id}"): RouteCases(
        access="admin",
        ok=ok(200, body={"name": "Studio care plus", "trial_days": 7}),
        invalid=(
            bad(422, "name", body={"name": None}),
            bad(422, "amount", body={"amount": -5}),
            bad(422, "interval_count", body={"interval": "year", "interval_count": 5}),
            Case(
                409,
                code="plan_in_use",
                path={"plan_id": Ref("used_plan_id")},
                body={"amount": 9900},
            ),
            *id_errors("plan_id", body={"name": "x"}),
        ),
    ),
    ("DELETE", "/api/v1/plans/{plan_id}"): RouteCases(
        access="admin", ok=ok(204), invalid=id_errors("plan_id")
    ),
    ("GET", "/api/v1/subscriptions"): RouteCases(
        access="agent",
        ok=ok(200, query={"status": "active", "limit": 10}),
        invalid=(
            *LIST_QUERY_ERRORS,
            bad(422, "status", query={"status": "sleeping"}),
            bad(422, "plan_id", query={"plan_id": NOT_A_UUID}),
        ),
    ),
    ("POST", "/api/v1/subscriptions"): RouteCases(
        access="agent",
        ok=ok(201, body={"contact_id": Ref("contact_id"), "plan_id": Ref("plan_id")}),
        invalid=(
            bad(422, "contact_id", body={"contact_id": UNKNOWN_ID, "plan_id": Ref("plan_id")}),
            bad(422, "plan_id", body={"contact_id": Ref("contact_id"), "plan_id": UNKNOWN_ID}),
            bad(
                422,
                "gateway",
                body={
                    "contact_id": Ref("contact_id"),
                    "plan_id": Ref("plan_id"),
                    "gateway": "cash",
                },
            ),
            bad(
                422,
                "start_date",
                body={
                    "contact_id": Ref("contact_id"),
                    "plan_id": Ref("plan_id"),
                    "start_date": "2000-01-01",
                },
            ),
            bad(422, "plan_id", body={"contact_id": Ref("contact_id")}),
        ),
    ),
    ("GET", "/api/v1/subscriptions/{subscription_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("subscription_id")
    ),
    ("POST", "/api/v1/subscriptions/{subscription_id}/cancel"): RouteCases(
        access="agent",
        ok=ok(200, body={"at_period_end": True}),
        invalid=(
            bad(422, "at_period_end", body={"at_period_end": "sometimes"}),
            *id_errors("subscription_id", body={}),
        ),
    ),
    ("POST", "/api/v1/subscriptions/{subscription_id}/pause"): RouteCases(
        access="agent",
        ok=ok(200),
        invalid=(
            Case(
                409,
                code="subscription_paused",
                path={"subscription_id": Ref("paused_subscription_id")},
            ),
            *id_errors("subscription_id"),
        ),
    ),
    ("POST", "/api/v1/subscriptions/{subscription_id}/resume"): RouteCases(
        access="agent",
        ok=ok(200, path={"subscription_id": Ref("paused_subscription_id")}),
        invalid=(
            Case(409, code="subscription_not_paused"),
            *id_errors("subscription_id"),
        ),
    ),
    ("POST", "/api/v1/subscriptions/{subscription_id}/change-plan"): RouteCases(
        access="agent",
        ok=ok(200, body={"plan_id": Ref("plan_id"), "proration": False}),
        invalid=(
            bad(422, "plan_id", body={"plan_id": UNKNOWN_ID}),
            bad(422, "proration", body={"plan_id": Ref("plan_id"), "proration": "half"}),
            *id_errors("subscription_id", body={"plan_id": UNKNOWN_ID}),
        ),
    ),
    ("GET", "/api/v1/email/suppressions"): RouteCases(
        access="admin",
        ok=ok(200, query={"reason": "manual"}),
        invalid=(bad(422, "reason", query={"reason": "bored"}), *LIST_QUERY_ERRORS),
    ),
    ("POST", "/api/v1/email/suppressions"): RouteCases(
        access="admin",
        ok=ok(201, body={"address": "gone@example.org", "detail": "asked by phone"}),
        invalid=(
            bad(422, "address", body={"address": "nobody"}),
            bad(422, "detail", body={"address": "gone@example.org", "detail": "x" * 2001}),
        ),
    ),
    ("DELETE", "/api/v1/email/suppressions/{suppression_id}"): RouteCases(
        access="admin", ok=ok(204), invalid=id_errors("suppression_id")
    ),
    # --- Email templates ---------------------------------------------------------------------
    ("POST", "/api/v1/email/templates"): RouteCases(
        access="admin",
        ok=ok(201, body=TEMPLATE_BODY),
        invalid=(
            bad(422, "key", body={**TEMPLATE_BODY, "key": "Not A Key"}),
            bad(422, "subject", body={**TEMPLATE_BODY, "subject": "Hi {{ nickname }}"}),
            bad(422, "body", body={**TEMPLATE_BODY, "body": "{% for x in %}"}),
            bad(
                422,
                "variables.0.type",
                body={**TEMPLATE_BODY, "variables": [{"name": "a", "type": "blob"}]},
            ),
            bad(422, "locale", body={**TEMPLATE_BODY, "locale": "english!"}),
        ),
    ),
    ("GET", "/api/v1/email/templates"): RouteCases(access="agent", ok=ok(200)),
    ("GET", "/api/v1/email/templates/{template_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("template_id")
    ),
    ("PATCH", "/api/v1/email/templates/{template_id}"): RouteCases(
        access="admin",
        ok=ok(200, body={"name": "Hello", "description": "First contact"}),
        invalid=(
            bad(422, "name", body={"name": ""}),
            bad(422, "default_locale", body={"default_locale": "fr"}),
            *id_errors("template_id", body={"name": "Hello"}),
        ),
    ),
    ("DELETE", "/api/v1/email/templates/{template_id}"): RouteCases(
        access="admin", ok=ok(204), invalid=id_errors("template_id")
    ),
    ("PUT", "/api/v1/email/templates/{template_id}/locales/{locale}"): RouteCases(
        access="admin",
        ok=ok(200, body={"subject": "Bonjour {{ first_name }}", "body": "<p>Bonjour</p>"}),
        invalid=(
            bad(422, "subject", body={"subject": "{{ nope }}", "body": "<p>x</p>"}),
            bad(422, "body_format", body={"subject": "x", "body": "x", "body_format": "rtf"}),
            bad(422, "locale", path={"locale": "fr_FR!"}, body={"subject": "x", "body": "x"}),
            *id_errors("template_id", body={"subject": "x", "body": "x"}),
        ),
    ),
    ("GET", "/api/v1/email/templates/{template_id}/versions"): RouteCases(
        access="agent",
        ok=ok(200, query={"locale": "en"}),
        invalid=(bad(422, "locale", query={"locale": "??"}), *id_errors("template_id")),
    ),
    ("POST", "/api/v1/email/templates/{template_id}/preview"): RouteCases(
        access="agent",
        ok=ok(200, body={"data": {"first_name": "Ada"}}),
        invalid=(
            bad(422, "data.first_name", body={"data": {}}),
            bad(422, "data.first_name", body={"data": {"first_name": 3}}),
            *id_errors("template_id", body={}),
        ),
    ),
    ("POST", "/api/v1/email/templates/{template_id}/send"): RouteCases(
        access="agent",
        ok=ok(202, body={"to": "ada@example.org", "data": {"first_name": "Ada"}}),
        invalid=(
            bad(422, "to", body={"to": "nobody", "data": {"first_name": "Ada"}}),
            bad(422, "data.first_name", body={"to": "ada@example.org", "data": {}}),
            bad(
                422,
                "attachments.0.object_id",
                body={
                    "to": "ada@example.org",
                    "data": {"first_name": "Ada"},
                    "attachments": [{"object_id": "00000000-0000-0000-0000-000000000000"}],
                },
            ),
            bad(
                422,
                "enquiry_id",
                body={
                    "to": "ada@example.org",
                    "data": {"first_name": "Ada"},
                    "enquiry_id": "00000000-0000-0000-0000-000000000000",
                },
            ),
            *id_errors("template_id", body={"to": "ada@example.org", "data": {}}),
        ),
    ),
    # --- Inbound email -----------------------------------------------------------------------
    ("POST", "/api/v1/email/inbound"): RouteCases(
        access="admin",
        ok=ok(201, content=RAW_EMAIL, headers={"Content-Type": "message/rfc822"}),
        invalid=(
            bad(
                400,
                "",
                code="bad_request",
                content=b"   ",
                headers={"Content-Type": "message/rfc822"},
            ),
        ),
    ),
    ("GET", "/api/v1/email/inbound"): RouteCases(
        access="agent",
        ok=ok(200),
        invalid=(bad(422, "enquiry_id", query={"enquiry_id": "nope"}), *LIST_QUERY_ERRORS),
    ),
    ("GET", "/api/v1/email/inbound/{inbound_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("inbound_id")
    ),
    # --- Email analytics ---------------------------------------------------------------------
    ("GET", "/api/v1/email/analytics"): RouteCases(
        access="admin",
        ok=ok(200, query={"from": "2027-01-01T00:00:00Z", "to": "2027-02-01T00:00:00Z"}),
        invalid=(
            bad(422, "from", query={"to": "2027-02-01T00:00:00Z"}),
            bad(422, "from", query={"from": "2027-01-01T00:00:00", "to": "2027-02-01T00:00:00Z"}),
            bad(422, "to", query={"from": "2027-02-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"}),
            bad(
                422,
                "group_by",
                query={"from": "2027-01-01T00:00Z", "to": "2027-02-01T00:00Z", "group_by": "hour"},
            ),
            bad(
                422,
                "format",
                query={"from": "2027-01-01T00:00Z", "to": "2027-02-01T00:00Z", "format": "xls"},
            ),
        ),
    ),
    ("GET", "/api/v1/email/messages/{email_id}/events"): RouteCases(
        access="admin", ok=ok(200), invalid=id_errors("email_id")
    ),
    ("DELETE", "/api/v1/email/mailbox"): RouteCases(access="admin", ok=ok(204)),
    # --- Outbox and jobs ----------------------------------------------------------------------
    ("GET", "/api/v1/outbox"): RouteCases(
        access="admin",
        ok=ok(200, query={"status": "queued", "kind": "invitation"}),
        invalid=(
            bad(422, "status", query={"status": "lost"}),
            bad(422, "to", query={"to": "x" * 321}),
            bad(422, "to", query={"to": "ada\x00@example.com"}),
            bad(422, "kind", query={"kind": "invitation\x00"}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("GET", "/api/v1/outbox/{email_id}"): RouteCases(
        access="admin", ok=ok(200), invalid=id_errors("email_id")
    ),
    ("GET", "/api/v1/admin/outbox"): RouteCases(
        access="instance_admin",
        ok=ok(200, caller="instance_admin", query={"kind": "verification"}),
        invalid=(
            bad(422, "status", caller="instance_admin", query={"status": "lost"}),
            bad(422, "cursor", caller="instance_admin", query={"cursor": "not a cursor"}),
            bad(422, "to", caller="instance_admin", query={"to": "ada\x00@example.com"}),
        ),
    ),
    ("GET", "/api/v1/admin/outbox/{email_id}"): RouteCases(
        access="instance_admin",
        ok=ok(200, caller="instance_admin"),
        invalid=id_errors("email_id", caller="instance_admin"),
    ),
    ("GET", "/api/v1/jobs"): RouteCases(
        access="admin",
        ok=ok(200, query={"status": "dead", "name": "email.send"}),
        invalid=(
            bad(422, "status", query={"status": "zombie"}),
            bad(422, "name", query={"name": "email.send\x00"}),
            *LIST_QUERY_ERRORS,
        ),
    ),
    ("POST", "/api/v1/jobs/{job_id}/retry"): RouteCases(
        access="admin", ok=ok(200), invalid=id_errors("job_id")
    ),
    ("GET", "/api/v1/admin/jobs"): RouteCases(
        access="instance_admin",
        ok=ok(200, caller="instance_admin", query={"status": "dead"}),
        invalid=(
            bad(422, "status", caller="instance_admin", query={"status": "zombie"}),
            bad(422, "limit", caller="instance_admin", query={"limit": 0}),
            bad(422, "name", caller="instance_admin", query={"name": "email.send\x00"}),
        ),
    ),
    ("POST", "/api/v1/admin/jobs/{job_id}/retry"): RouteCases(
        access="instance_admin",
        ok=ok(200, caller="instance_admin"),
        invalid=id_errors("job_id", caller="instance_admin"),
    ),
    # --- Public form endpoints (JSON) ---------------------------------------------------------
    ("OPTIONS", "/f/{public_id}"): RouteCases(
        access="public",
        ok=ok(
            204,
            caller="anonymous",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        ),
        invalid=(
            bad(
                403,
                "allowed_origins",
                caller="anonymous",
                headers={
                    "Origin": "https://other.example",
                    "Access-Control-Request-Method": "POST",
                },
            ),
        ),
    ),
    ("POST", "/f/{public_id}"): RouteCases(
        access="public",
        ok=ok(201, caller="anonymous", body=ANSWERS),
        invalid=(
            bad(422, "name", caller="anonymous", body={**ANSWERS, "name": ""}),
            bad(422, "email", caller="anonymous", body={**ANSWERS, "email": "not-an-email"}),
            bad(422, "body", caller="anonymous", body=["Camille"]),
            bad(
                422,
                "body",
                caller="anonymous",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
        ),
    ),
    ("OPTIONS", "/f/{public_id}/uploads"): RouteCases(
        access="public",
        ok=ok(
            204,
            caller="anonymous",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
        ),
        invalid=(
            bad(
                403,
                "allowed_origins",
                caller="anonymous",
                headers={
                    "Origin": "https://other.example",
                    "Access-Control-Request-Method": "POST",
                },
            ),
        ),
    ),
    ("POST", "/f/{public_id}/uploads"): RouteCases(
        access="public",
        ok=ok(
            201,
            caller="anonymous",
            query={"field": "attachment", "filename": "brief.pdf"},
            content=PDF_BYTES,
            headers={"Content-Type": "application/pdf"},
        ),
        invalid=(
            bad(
                404,
                "name",
                caller="anonymous",
                query={"field": "name"},
                content=PDF_BYTES,
                headers={"Content-Type": "application/pdf"},
            ),
            bad(
                415,
                "application/pdf",
                caller="anonymous",
                query={"field": "attachment"},
                content=b"plain words, not a document",
                headers={"Content-Type": "application/pdf"},
            ),
            bad(
                422,
                "field",
                caller="anonymous",
                content=PDF_BYTES,
                headers={"Content-Type": "application/pdf"},
            ),
        ),
    ),
    # --- Signed links, previews and scans -----------------------------------------------------
    ("POST", "/api/v1/storage/objects/{object_id}/links"): RouteCases(
        access="agent",
        ok=ok(201, body={"expires_in": 600}),
        invalid=(
            bad(422, "expires_in", body={"expires_in": 59}),
            bad(422, "expires_in", body={"expires_in": 7 * 24 * 3600 + 1}),
            bad(422, "expires_in", body={"expires_in": "soon"}),
            bad(422, "lifetime", body={"lifetime": 600}),
            *id_errors("object_id", body={"expires_in": 600}),
        ),
    ),
    ("POST", "/api/v1/storage/buckets/{bucket_id}/upload-links"): RouteCases(
        access="agent",
        ok=ok(201, body=UPLOAD_LINK),
        invalid=(
            bad(422, "key", body={**UPLOAD_LINK, "key": "../secret.txt"}),
            bad(422, "key", body={"expires_in": 600}),
            bad(422, "max_bytes", body={**UPLOAD_LINK, "max_bytes": 0}),
            bad(422, "max_bytes", body={**UPLOAD_LINK, "max_bytes": 10**15}),
            bad(422, "content_types.0", body={**UPLOAD_LINK, "content_types": ["not a type"]}),
            bad(422, "expires_in", body={**UPLOAD_LINK, "expires_in": 30}),
            *id_errors("bucket_id", body=UPLOAD_LINK),
        ),
    ),
    ("POST", "/api/v1/storage/signing-keys/rotate"): RouteCases(access="admin", ok=ok(200)),
    ("GET", "/api/v1/storage/objects/{object_id}/preview"): RouteCases(
        access="agent",
        ok=ok(
            200,
            path={"object_id": Ref("image_object_id")},
            query={"width": 64, "height": 64, "format": "png"},
        ),
        invalid=(
            bad(422, "width", query={"width": 0}),
            bad(422, "height", query={"height": 5000}),
            bad(422, "format", query={"format": "bmp"}),
            bad(415, "content"),
            *id_errors("object_id"),
        ),
    ),
    ("GET", "/api/v1/storage/objects/{object_id}/scan"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("object_id")
    ),
    # --- Website chat: settings and the public visitor API ------------------------------------
    ("GET", "/api/v1/chat/settings"): RouteCases(access="agent", ok=ok(200)),
    ("PUT", "/api/v1/chat/settings"): RouteCases(
        access="admin",
        ok=ok(200, body={"theme": {"title": "Ask the studio"}, "allowed_origins": [ORIGIN]}),
        invalid=(
            bad(422, "theme.title", body={"theme": {"title": "x" * 81}}),
            bad(422, "theme.greeting", body={"theme": {"greeting": "x" * 501}}),
            bad(422, "theme.color", body={"theme": {"color": "blue"}}),
            bad(422, "theme.position", body={"theme": {"position": "top"}}),
            bad(422, "allowed_origins.0", body={"allowed_origins": [f"{ORIGIN}/contact"]}),
            bad(422, "enabled", body={"enabled": "maybe"}),
            bad(422, "enabled", body={"enabled": 1}),
            bad(422, "colour", body={"colour": "#000000"}),
        ),
    ),
    ("POST", "/api/v1/chat/settings/rotate-key"): RouteCases(access="admin", ok=ok(200)),
    ("GET", "/api/v1/chat/visitors/{visitor_id}"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("visitor_id")
    ),
    ("POST", "/api/v1/chat/visitors/{visitor_id}/revoke"): RouteCases(
        access="agent", ok=ok(200), invalid=id_errors("visitor_id")
    ),
    ("GET", "/chat/{public_key}/config"): RouteCases(
        access="public",
        ok=ok(200, caller="anonymous", headers={"Origin": ORIGIN}),
        invalid=(
            bad(
                403,
                "allowed_origins",
                caller="anonymous",
                headers={"Origin": "https://other.example"},
            ),
        ),
    ),
    ("POST", "/chat/{public_key}/visitors"): RouteCases(
        access="public",
        ok=ok(201, caller="anonymous", body={"name": "Camille", "email": "camille@example.org"}),
        invalid=(
            bad(422, "email", caller="anonymous", body={"email": "not-an-email"}),
            bad(422, "name", caller="anonymous", body={"name": "x" * 201}),
            bad(422, "nickname", caller="anonymous", body={"nickname": "Cam"}),
            bad(
                403,
                "allowed_origins",
                caller="anonymous",
                body={"name": "Camille"},
                headers={"Origin": "https://other.example"},
            ),
        ),
    ),
    **{
        ("OPTIONS", f"/chat/{{public_key}}{path}"): RouteCases(
            access="public",
            ok=ok(
                204,
                caller="anonymous",
                headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
            ),
            invalid=(
                bad(
                    403,
                    "allowed_origins",
                    caller="anonymous",
                    headers={
                        "Origin": "https://other.example",
                        "Access-Control-Request-Method": "POST",
                    },
                ),
                Case(
                    status=403,
                    code="method_not_allowed",
                    caller="anonymous",
                    headers={"Origin": ORIGIN, "Access-Control-Request-Method": "DELETE"},
                ),
            ),
        )
        for path in (
            "/config",
            "/visitors",
            "/visitor",
            "/conversations",
            "/uploads",
            "/conversations/{conversation_id}/messages",
            "/conversations/{conversation_id}/read",
            "/conversations/{conversation_id}/attachments/{object_id}",
            "/conversations/{conversation_id}/attachments/{object_id}/preview",
        )
    },
}

_VISITOR_TOKEN_ROUTE = (
    "chat visitor route that needs a visitor token in the Authorization header, which the "
    "matrix's callers (staff and anonymous) do not carry; tests/test_chat_visitor_api.py "
    "covers its 401, 403, 404 (other visitors and workspaces), 422 and 429 cases"
)

EXCLUDED: dict[tuple[str, str], str] = {
    **{
        route: _VISITOR_TOKEN_ROUTE
        for route in (
            ("GET", "/chat/{public_key}/visitor"),
            ("PATCH", "/chat/{public_key}/visitor"),
            ("POST", "/chat/{public_key}/conversations"),
            ("GET", "/chat/{public_key}/conversations"),
            ("GET", "/chat/{public_key}/conversations/{conversation_id}/messages"),
            ("POST", "/chat/{public_key}/conversations/{conversation_id}/messages"),
            ("POST", "/chat/{public_key}/conversations/{conversation_id}/read"),
            ("POST", "/chat/{public_key}/uploads"),
            ("GET", "/chat/{public_key}/conversations/{conversation_id}/attachments/{object_id}"),
            (
                "GET",
                "/chat/{public_key}/conversations/{conversation_id}/attachments/{object_id}/preview",
            ),
        )
    },
    ("GET", "/api/v1/openapi.json"): "generated API description; tests/test_http.py reads it",
    ("GET", "/docs"): "Swagger UI page; tests/test_http.py loads it",
    ("GET", "/docs/oauth2-redirect"): "Swagger UI helper page with no input",
    ("GET", "/healthz"): "health probe without input or authentication",
    ("GET", "/readyz"): "readiness probe without input or authentication",
    ("GET", "/metrics"): "Prometheus text format, not JSON; tests/test_http.py reads it",
    ("WEBSOCKET", "/api/v1/realtime"): (
        "WebSocket: authenticates in its first frame and closes with a code, not an HTTP "
        "status; tests/test_realtime.py covers invalid tokens and frames"
    ),
    ("POST", "/api/v1/email/provider/test"): (
        "sends a real email through an outside provider, which the matrix cannot reach; "
        "tests/test_email_workspace_provider.py covers success, the provider's errors, a "
        "missing provider, invalid input and roles against local provider servers"
    ),
    ("PUT", "/api/v1/payments/stripe"): (
        "checks the key with a call to Stripe, which the matrix cannot reach; "
        "tests/test_stripe_payments.py covers success, a rejected key, invalid input and roles "
        "against the local fake Stripe server"
    ),
    ("POST", "/webhooks/stripe/{webhook_token}"): (
        "Stripe webhook verified by the Stripe-Signature header, not by a login; "
        "tests/test_stripe_webhooks.py covers valid, tampered, stale, duplicated and "
        "out-of-order deliveries and unknown addresses"
    ),
    ("POST", "/webhooks/email/{provider}/{token}/events"): (
        "provider webhook verified by the provider's signature, not by a login; "
        "tests/test_email_events_api.py covers valid, tampered, replayed, duplicated and "
        "out-of-order deliveries and unknown addresses"
    ),
    ("POST", "/webhooks/email/{provider}/{token}/inbound"): (
        "provider inbound webhook verified by the provider's signature or credentials; "
        "tests/test_email_inbound_api.py"
    ),
    ("GET", "/api/v1/email/mailbox"): (
        "needs a mailbox, which can only be set by logging in to a live IMAP server; "
        "tests/test_email_mailbox_api.py covers it against Dovecot"
    ),
    ("PUT", "/api/v1/email/mailbox"): (
        "logs in to the IMAP server before storing anything; tests/test_email_mailbox_api.py "
        "covers valid, invalid, private-host and refused logins against Dovecot"
    ),
    ("POST", "/api/v1/email/mailbox/test"): (
        "logs in to a live IMAP server; tests/test_email_mailbox_api.py"
    ),
    ("POST", "/api/v1/email/mailbox/poll"): (
        "needs a mailbox set against a live IMAP server; tests/test_email_mailbox_api.py"
    ),
    ("GET", "/e/o/{token}.gif"): "open pixel image; tests/test_email_events_api.py",
    ("GET", "/e/c/{token}"): (
        "click redirect; tests/test_email_events_api.py covers tampered tokens (404, no redirect)"
    ),
    ("GET", "/e/u/{token}"): "HTML unsubscribe page; tests/test_email_events_api.py",
    ("POST", "/e/u/{token}"): "one-click unsubscribe (RFC 8058); tests/test_email_events_api.py",
    ("GET", "/f/{public_id}"): "HTML form page; tests/test_public_form.py",
    ("GET", "/f/{public_id}/thanks"): "HTML page; tests/test_public_form.py",
    ("GET", "/storage/public/{workspace_id}/{bucket_name}/{key}"): (
        "public file address without authentication, where a workspace id in the path is the "
        "point rather than another workspace's resource; tests/test_storage_api.py covers it"
    ),
    ("GET", "/verify-email"): "HTML page for an email link; tests/test_auth_pages.py",
    ("POST", "/verify-email"): "HTML form post answered with a page; tests/test_auth_pages.py",
    ("GET", "/reset-password"): "HTML page for an email link; tests/test_auth_pages.py",
    ("POST", "/reset-password"): "HTML form post answered with a page; tests/test_auth_pages.py",
    ("GET", "/accept-invitation"): "HTML page for an email link; tests/test_auth_pages.py",
    ("GET", "/storage/links/{token}"): (
        "public download of an object's bytes with a signed link, not JSON; "
        "tests/test_storage_links_api.py covers every rejection"
    ),
    ("PUT", "/storage/links/{token}"): (
        "public upload of raw bytes with a signed link; tests/test_storage_links_api.py covers "
        "every rejection"
    ),
    ("GET", "/pay/{token}"): (
        "HTML payment page reached with an invoice's secret token; tests/test_payment_page.py "
        "covers unknown tokens, drafts, escaping and the rate limit"
    ),
    ("GET", "/pay/{token}/pdf"): "PDF download of the payment page; tests/test_payment_page.py",
    ("POST", "/pay/{token}/checkout"): (
        "form post from the payment page answered with a redirect to Stripe Checkout; "
        "tests/test_payment_page.py covers its 404 and 409 answers"
    ),
    ("GET", "/chat/widget.js"): (
        "the chat widget's JavaScript file, without input; tests/test_widget_e2e.py checks its "
        "headers and runs it in Chromium"
    ),
    ("GET", "/chat/demo"): (
        "HTML demo page of embedded mode, without input; tests/test_widget_e2e.py covers it "
        "and its 404 on scaled installs"
    ),
}
