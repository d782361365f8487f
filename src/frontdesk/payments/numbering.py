"""Gapless document numbers from patterns such as "INV-{YYYY}-{seq:04}".

Tokens: {YYYY} four-digit year, {YY} two-digit year, {MM} two-digit month, {seq} the
sequence number, {seq:0N} the sequence padded with zeros to N digits (N from 1 to 12).
A pattern contains exactly one sequence token. The sequence counts per "scope", the pattern
rendered without its sequence token, so "INV-{YYYY}-{seq}" starts again at 1 each year.
"""

from __future__ import annotations

import re
import uuid
from datetime import date

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from frontdesk.core.errors import ValidationFailed
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments.models import NumberSequence

TOKEN = re.compile(r"\{([^{}]*)\}")
SEQUENCE_TOKEN = re.compile(r"^seq(?::0([1-9]|1[0-2]))?$")
DATE_TOKENS = ("YYYY", "YY", "MM")
MAX_NUMBER_LENGTH = 100


def check_pattern(pattern: object, field: str) -> str:
    """Return ``pattern`` if it is a valid number pattern; raise a 422 naming ``field``."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValidationFailed(field, 'Send a pattern such as "INV-{YYYY}-{seq:04}".', "required")
    if len(pattern) > 60:
        raise ValidationFailed(field, "Use at most 60 characters.", "too_long")
    tokens = TOKEN.findall(pattern)
    unknown = [t for t in tokens if t not in DATE_TOKENS and not SEQUENCE_TOKEN.match(t)]
    if unknown:
        raise ValidationFailed(
            field,
            f"Unknown token {{{unknown[0]}}}; use {{YYYY}}, {{YY}}, {{MM}}, {{seq}} or {{seq:04}}.",
            "unknown_token",
        )
    if sum(1 for t in tokens if SEQUENCE_TOKEN.match(t)) != 1:
        raise ValidationFailed(
            field,
            "Put exactly one sequence token, {seq} or {seq:0N}, in the pattern.",
            "no_sequence",
        )
    if "{" in TOKEN.sub("", pattern) or "}" in TOKEN.sub("", pattern):
        raise ValidationFailed(field, "A brace is not part of a token.", "unbalanced_brace")
    return pattern


def _render(pattern: str, on: date, sequence: int | None) -> str:
    """Render ``pattern`` for the day ``on``; a ``None`` sequence leaves the token out."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(1)
        if token == "YYYY":
            return f"{on.year:04d}"
        if token == "YY":
            return f"{on.year % 100:02d}"
        if token == "MM":
            return f"{on.month:02d}"
        if sequence is None:
            return ""
        width = SEQUENCE_TOKEN.match(token)
        digits = int(width.group(1)) if width and width.group(1) else 1
        return f"{sequence:0{digits}d}"

    return TOKEN.sub(replace, pattern)


def scope_of(pattern: str, on: date) -> str:
    """Return the scope the sequence counts in: the pattern rendered without its sequence."""
    return _render(pattern, on, None)


async def next_number(
    uow: UnitOfWork, workspace_id: uuid.UUID, kind: str, pattern: str, on: date
) -> str:
    """Take the next number of ``kind`` ("invoice", "credit_note") for the day ``on``.

    The row of the sequence is inserted if missing (a concurrent insert is ignored), then
    incremented with one UPDATE ... RETURNING. The UPDATE holds the row lock until the
    caller's transaction ends, so concurrent issuers wait for each other, and a rolled-back
    issue gives its number back: numbers stay unique and gapless. SQLite transactions start
    with BEGIN IMMEDIATE, so there they run one at a time.
    """
    scope = scope_of(pattern, on)
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await uow.session.execute(
        insert(NumberSequence)
        .values(workspace_id=workspace_id, kind=kind, scope=scope, last_value=0)
        .on_conflict_do_nothing()
    )
    value = (
        await uow.session.execute(
            sa.update(NumberSequence)
            .where(
                NumberSequence.workspace_id == workspace_id,
                NumberSequence.kind == kind,
                NumberSequence.scope == scope,
            )
            .values(last_value=NumberSequence.last_value + 1)
            .returning(NumberSequence.last_value)
            .execution_options(synchronize_session=False)
        )
    ).scalar_one()
    number = _render(pattern, on, value)
    if len(number) > MAX_NUMBER_LENGTH:
        raise ValidationFailed(
            "invoice_number_pattern", "The pattern renders a number that is too long.", "too_long"
        )
    return number
