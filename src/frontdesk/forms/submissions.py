"""Turning a form submission into a contact and an enquiry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from frontdesk.contacts.service import match_or_create_contact
from frontdesk.core.errors import NotFound, ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.email.service import send_enquiry_acknowledgement
from frontdesk.enquiries.models import Enquiry
from frontdesk.enquiries.service import create_enquiry
from frontdesk.forms.models import Form
from frontdesk.forms.uploads import resolve_uploads
from frontdesk.forms.validation import validate_answers
from frontdesk.workspaces.models import Workspace

log = structlog.get_logger()


def contact_identity(
    fields: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]
) -> tuple[str | None, str | None, str | None]:
    """Return the (email, phone, name) of a submission's normalized answers.

    The email comes from the first email field, the phone from the first phone field, and
    the name from a field keyed ``name`` or ``full_name``, else ``first_name`` and
    ``last_name`` joined.
    """
    email = next((answers.get(f["key"]) for f in fields if f["type"] == "email"), None)
    phone = next((answers.get(f["key"]) for f in fields if f["type"] == "phone"), None)
    text_keys = {f["key"] for f in fields if f["type"] in ("text", "long_text")}
    name = None
    for key in ("name", "full_name"):
        if key in text_keys and answers.get(key):
            name = str(answers[key])
            break
    if name is None:
        parts = [
            str(answers[key])
            for key in ("first_name", "last_name")
            if key in text_keys and answers.get(key)
        ]
        name = " ".join(parts) or None
    return email, phone, name[:200] if name else None


async def submit_form(
    uow: UnitOfWork,
    *,
    form: Form,
    answers: Mapping[str, Any],
    source_details: Mapping[str, Any],
) -> Enquiry:
    """Validate answers to a published form, match or create the contact, create the enquiry.

    ``answers`` maps field keys to JSON values. ``source_details`` adds to the details that
    are always recorded (form id, name, version and language); pass only non-personal
    data such as the page's Referer. Raises ValidationFailed with one error per invalid
    field (``field`` is the field key) before anything is written, and NotFound when the
    form is not published. A file field's answer is a list of upload tokens; the enquiry
    stores the files' descriptions instead. Queues the acknowledgement email when an email
    was given.
    """
    if not form.published:
        raise NotFound("This form does not exist or no longer accepts answers.")
    workspace = await uow.session.get(Workspace, form.workspace_id)
    if workspace is None:
        raise NotFound("This form does not exist or no longer accepts answers.")
    values, consents, errors = validate_answers(
        form.fields, answers, default_country=workspace.default_country, language=form.language
    )
    if errors:
        raise ValidationFailed.many(errors)
    values, uploads = await resolve_uploads(uow, form, values)

    email, phone, name = contact_identity(form.fields, values)
    contact = await match_or_create_contact(
        uow, workspace_id=workspace.id, email=email, phone=phone, name=name
    )
    now = uow.now().isoformat()
    labels = {f["key"]: f["label"] for f in form.fields}
    consent = {
        key: {"given": given, "text": labels[key], "at": now, "form_version": form.version}
        for key, given in consents.items()
    }
    details = {
        **source_details,
        "form_id": str(form.id),
        "form_name": form.name,
        "form_version": form.version,
        "language": form.language,
    }
    enquiry, _data = await create_enquiry(
        uow,
        workspace_id=workspace.id,
        contact=contact,
        source="form",
        source_details=details,
        answers=values,
        consent=consent,
        subject=form.name,
        form_id=form.id,
        form_version=form.version,
    )
    for upload in uploads:
        upload.enquiry_id = enquiry.id
    if email:
        # The acknowledgement goes to the address typed in this submission, not to an
        # address the matched contact had before: someone else's phone number must not
        # send mail to that person.
        await send_enquiry_acknowledgement(
            uow,
            workspace_id=workspace.id,
            enquiry_id=enquiry.id,
            to=email,
            contact_name=name,
            business_name=workspace.name,
            reply_to=workspace.reply_to_email,
            form_name=form.name,
            language=form.language,
        )
    log.info(
        "form.submitted",
        form_id=str(form.id),
        enquiry_id=str(enquiry.id),
        contact_id=str(contact.id),
    )
    return enquiry
