"""Render the subject, plain text and HTML of each kind of email from package templates.

HTML templates are autoescaped; plain text templates are not, because their output is never
interpreted as markup. Every value that ends up in a header goes through ``single_line``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from frontdesk.email.translations import acknowledgement_texts

# Carriage return, line feed and the other characters that some mail software treats as a
# line break. Removing them from header values prevents header injection.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c\x1d\x1e\x85\u2028\u2029]+")
_SPACES = re.compile(r"\s+")

MAX_SUBJECT_LENGTH = 250
# Limits of the answers summary in staff emails, so one enquiry cannot produce a huge email.
MAX_SUMMARY_ANSWERS = 30
MAX_SUMMARY_VALUE_LENGTH = 1000


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def single_line(value: str, *, max_length: int | None = None) -> str:
    """Return ``value`` without line breaks and runs of spaces, cut to ``max_length``."""
    flat = _SPACES.sub(" ", _LINE_BREAKS.sub(" ", value)).strip()
    if max_length is not None and len(flat) > max_length:
        flat = flat[: max_length - 1].rstrip() + "…"
    return flat


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("frontdesk.email", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, *, subject: str, **context: Any) -> RenderedEmail:
    """Render ``name.txt`` and ``name.html`` with ``context``; the subject becomes one line."""
    subject = single_line(subject, max_length=MAX_SUBJECT_LENGTH)
    environment = _environment()
    text = environment.get_template(f"{name}.txt").render(subject=subject, **context)
    html = environment.get_template(f"{name}.html").render(subject=subject, **context)
    return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)


def describe_duration(seconds: int) -> str:
    """Describe a link's validity in whole days or hours, or minutes below one hour."""
    if seconds >= 86400 and seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day" if days == 1 else f"{days} days"
    if seconds >= 3600 and seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour" if hours == 1 else f"{hours} hours"
    minutes = max(seconds // 60, 1)
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def compose_verification(*, full_name: str, link: str, valid_seconds: int) -> RenderedEmail:
    return render(
        "verification",
        subject="Confirm your email address for Frontdesk",
        full_name=full_name,
        link=link,
        valid_for=describe_duration(valid_seconds),
    )


def compose_password_reset(*, full_name: str, link: str, valid_seconds: int) -> RenderedEmail:
    return render(
        "password_reset",
        subject="Reset your Frontdesk password",
        full_name=full_name,
        link=link,
        valid_for=describe_duration(valid_seconds),
    )


def compose_invitation(
    *, workspace_name: str, inviter_name: str, role: str, link: str, valid_seconds: int
) -> RenderedEmail:
    return render(
        "invitation",
        subject=f"{single_line(inviter_name)} invited you to {single_line(workspace_name)} "
        "on Frontdesk",
        workspace_name=workspace_name,
        inviter_name=inviter_name,
        role=role,
        link=link,
        valid_for=describe_duration(valid_seconds),
    )


def compose_acknowledgement(
    *,
    language: str,
    business_name: str,
    form_name: str,
    contact_name: str | None,
    can_reply: bool,
) -> RenderedEmail:
    """Render the acknowledgement in ``language``, falling back to English."""
    lang, texts = acknowledgement_texts(language)
    values = {"business": business_name, "form": form_name, "name": contact_name or ""}
    keys = ["greeting_named" if contact_name else "greeting", "received"]
    if can_reply:
        keys.append("reply")
    keys.append("automatic")
    environment = _environment()
    subject = single_line(
        texts["subject"].format(business=single_line(business_name)),
        max_length=MAX_SUBJECT_LENGTH,
    )
    # The texts are trusted; Markup.format escapes only the values put into them.
    text = environment.get_template("enquiry_acknowledgement.txt").render(
        subject=subject,
        paragraphs=[texts[key].format(**values) for key in keys],  # type: ignore[literal-required]
    )
    html = environment.get_template("enquiry_acknowledgement.html").render(
        subject=subject,
        lang=lang,
        paragraphs=[Markup(texts[key]).format(**values) for key in keys],  # type: ignore[literal-required]  # noqa: S704
    )
    return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)


def _format_answer(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(_format_answer(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _answer_rows(answers: Any) -> list[dict[str, str]]:
    """Turn answers into label and value rows: a mapping of field key to value, or a list of
    ``{"label"|"key", "value"}`` items."""
    rows: list[dict[str, str]] = []
    if isinstance(answers, dict):
        items = [(str(key), value) for key, value in answers.items()]
    elif isinstance(answers, list):
        items = [
            (str(item.get("label") or item.get("key") or ""), item.get("value"))
            for item in answers
            if isinstance(item, dict)
        ]
    else:
        items = []
    for label, value in items:
        text = _format_answer(value)
        if len(text) > MAX_SUMMARY_VALUE_LENGTH:
            text = text[: MAX_SUMMARY_VALUE_LENGTH - 1] + "…"
        rows.append({"label": label, "value": text})
    return rows


def _contact_line(enquiry: dict[str, Any]) -> str:
    contact = enquiry.get("contact")
    if not isinstance(contact, dict):
        return ""
    parts = [
        str(contact[key])
        for key in ("name", "email", "phone")
        if contact.get(key) not in (None, "")
    ]
    return " · ".join(parts)


def _enquiry_context(enquiry: dict[str, Any]) -> dict[str, Any]:
    rows = _answer_rows(enquiry.get("answers"))
    return {
        "enquiry_id": str(enquiry.get("id", "")),
        "enquiry_subject": str(enquiry.get("subject") or ""),
        "contact_line": _contact_line(enquiry),
        "answers": rows[:MAX_SUMMARY_ANSWERS],
        "answers_omitted": max(len(rows) - MAX_SUMMARY_ANSWERS, 0),
    }


def _enquiry_title(enquiry: dict[str, Any]) -> str:
    contact = enquiry.get("contact")
    if isinstance(contact, dict) and contact.get("name"):
        return f"from {single_line(str(contact['name']), max_length=80)}"
    if enquiry.get("subject"):
        return f"“{single_line(str(enquiry['subject']), max_length=80)}”"
    return str(enquiry.get("id", ""))[-8:]


def compose_new_enquiry(
    *, enquiry: dict[str, Any], recipient_name: str, workspace_name: str
) -> RenderedEmail:
    return render(
        "new_enquiry",
        subject=f"New enquiry {_enquiry_title(enquiry)} in {single_line(workspace_name)}",
        recipient_name=recipient_name,
        workspace_label=f"“{workspace_name}”",
        **_enquiry_context(enquiry),
    )


def compose_enquiry_assigned(
    *, enquiry: dict[str, Any], recipient_name: str, workspace_name: str
) -> RenderedEmail:
    return render(
        "enquiry_assigned",
        subject=f"Enquiry {_enquiry_title(enquiry)} was assigned to you",
        recipient_name=recipient_name,
        workspace_label=f"“{workspace_name}”",
        **_enquiry_context(enquiry),
    )
