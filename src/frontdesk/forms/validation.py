"""Checks of form definitions and of submitted answers.

Patterns run on RE2, whose matching time is linear in the input, so a business's pattern
cannot stall the server with catastrophic backtracking. A pattern must match the whole
answer (full match), as if it were written between ``^`` and ``$``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from urllib.parse import urlsplit

import re2

from frontdesk.contacts.normalize import InvalidValue, normalize_email, normalize_phone
from frontdesk.core.errors import FieldError
from frontdesk.core.origins import normalize_origin
from frontdesk.core.text import is_blank
from frontdesk.forms.i18n import error_message, normalize_language
from frontdesk.forms.schemas import (
    MAX_ALLOWED_ORIGINS,
    MAX_FIELDS,
    MAX_OPTIONS,
    FieldDefinition,
)

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TEXT_TYPES = frozenset({"text", "long_text", "email", "phone"})
CHOICE_TYPES = frozenset({"choice", "multi_choice"})
BOOLEAN_TYPES = frozenset({"checkbox", "consent"})
# Answer lengths when a field sets no max_length; the request body limit still applies.
DEFAULT_MAX_LENGTH = {"text": 1000, "long_text": 20_000, "email": 320, "phone": 64}
_VALIDATION_KEYS_BY_TYPE = {
    **dict.fromkeys(TEXT_TYPES, frozenset({"min_length", "max_length", "pattern"})),
    "number": frozenset({"min", "max"}),
}
_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER_PATTERN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER_PATTERN = re.compile(r"^[+-]?\d+$")
# The largest whole number that a double, and so a JavaScript number, represents exactly.
MAX_EXACT_INTEGER = 2**53 - 1
# C0 control characters other than tab and newline, DEL, and the C1 control characters other
# than NEL. PostgreSQL rejects NUL in text.
_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x84\x86-\x9f]")
# Line breaks other than LF: CR LF, CR, NEL, and the line and paragraph separators.
_LINE_BREAKS = re.compile("\r\n|[\r\x85\u2028\u2029]")
_RE2_MAX_MEMORY = 8 << 20


@functools.lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Any:
    """Compile a pattern with RE2; raise ValueError with RE2's reason if it is invalid."""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = _RE2_MAX_MEMORY
    try:
        return re2.compile(pattern, options=options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from exc


def check_fields(
    fields: Sequence[FieldDefinition], *, max_file_bytes: int | None = None
) -> list[FieldError]:
    """Return every problem of a list of field definitions, each with its path.

    ``max_file_bytes`` is the instance's storage limit, the ceiling of a file field's
    ``max_bytes``.
    """
    errors: list[FieldError] = []
    if not fields:
        errors.append(
            FieldError(field="fields", message="Add at least one field.", code="too_short")
        )
    if len(fields) > MAX_FIELDS:
        errors.append(
            FieldError(
                field="fields",
                message=f"A form has at most {MAX_FIELDS} fields; it has {len(fields)}.",
                code="too_long",
            )
        )
    seen: dict[str, int] = {}
    for index, definition in enumerate(fields):
        path = f"fields.{index}"
        if not KEY_PATTERN.match(definition.key):
            errors.append(
                FieldError(
                    field=f"{path}.key",
                    message="Use a lower-case letter, then up to 62 lower-case letters, "
                    "digits or underscores, like 'full_name'.",
                    code="invalid_key",
                )
            )
        elif definition.key in seen:
            errors.append(
                FieldError(
                    field=f"{path}.key",
                    message=f"The key '{definition.key}' is already used by fields.{seen[definition.key]}; "
                    "keys must be unique.",
                    code="duplicate_key",
                )
            )
        else:
            seen[definition.key] = index
        errors.extend(_check_options(definition, path))
        errors.extend(_check_validation(definition, path))
        errors.extend(_check_file_options(definition, path, max_file_bytes))
    return errors


def _check_file_options(
    definition: FieldDefinition, path: str, max_file_bytes: int | None
) -> list[FieldError]:
    if definition.type != "file":
        if definition.file is None:
            return []
        return [
            FieldError(
                field=f"{path}.file",
                message=f"'file' applies only to 'file' fields; remove it from this "
                f"'{definition.type}' field.",
                code="not_applicable",
            )
        ]
    options = definition.file
    if options is None or max_file_bytes is None or options.max_bytes <= max_file_bytes:
        return []
    return [
        FieldError(
            field=f"{path}.file.max_bytes",
            message=f"This instance stores files of at most {max_file_bytes} bytes; "
            "use that or less.",
            code="too_large",
        )
    ]


def _check_options(definition: FieldDefinition, path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    if definition.type not in CHOICE_TYPES:
        if definition.options is not None:
            errors.append(
                FieldError(
                    field=f"{path}.options",
                    message=f"A '{definition.type}' field has no options; remove them or use "
                    "type 'choice' or 'multi_choice'.",
                    code="not_applicable",
                )
            )
        return errors
    if not definition.options:
        errors.append(
            FieldError(
                field=f"{path}.options",
                message=f"A '{definition.type}' field needs at least one option.",
                code="missing",
            )
        )
        return errors
    if len(definition.options) > MAX_OPTIONS:
        errors.append(
            FieldError(
                field=f"{path}.options",
                message=f"A field has at most {MAX_OPTIONS} options.",
                code="too_long",
            )
        )
    values: set[str] = set()
    for index, option in enumerate(definition.options):
        if option.value in values:
            errors.append(
                FieldError(
                    field=f"{path}.options.{index}.value",
                    message=f"The option value '{option.value}' is repeated; values must be unique.",
                    code="duplicate_value",
                )
            )
        values.add(option.value)
    return errors


def _check_validation(definition: FieldDefinition, path: str) -> list[FieldError]:
    rules = definition.validation
    if rules is None:
        return []
    errors: list[FieldError] = []
    allowed = _VALIDATION_KEYS_BY_TYPE.get(definition.type, frozenset())
    for name in sorted(rules.model_fields_set):
        if getattr(rules, name) is not None and name not in allowed:
            hint = f"use {', '.join(sorted(allowed))}" if allowed else "remove 'validation'"
            errors.append(
                FieldError(
                    field=f"{path}.validation.{name}",
                    message=f"'{name}' does not apply to a '{definition.type}' field; {hint}.",
                    code="not_applicable",
                )
            )
    if (
        rules.min_length is not None
        and rules.max_length is not None
        and rules.min_length > rules.max_length
    ):
        errors.append(
            FieldError(
                field=f"{path}.validation.max_length",
                message="max_length must not be less than min_length.",
                code="invalid_range",
            )
        )
    for name in ("min", "max"):
        value = getattr(rules, name)
        if value is not None and not _is_finite(value):
            errors.append(
                FieldError(
                    field=f"{path}.validation.{name}",
                    message="Use a finite number.",
                    code="invalid",
                )
            )
    if rules.min is not None and rules.max is not None and rules.min > rules.max:
        errors.append(
            FieldError(
                field=f"{path}.validation.max",
                message="max must not be less than min.",
                code="invalid_range",
            )
        )
    if rules.pattern is not None and "pattern" in allowed:
        try:
            compile_pattern(rules.pattern)
        except ValueError as exc:
            errors.append(
                FieldError(
                    field=f"{path}.validation.pattern",
                    message=f"The pattern is not valid RE2 syntax: {exc}.",
                    code="invalid_pattern",
                )
            )
    return errors


def _is_finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def normalize_redirect_url(value: str) -> str:
    """Return a redirect URL if it is an absolute http(s) URL; raise ValueError otherwise."""
    url = value.strip()
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or len(url) > 2000
        or any(ch.isspace() or not ch.isprintable() for ch in url)
    ):
        raise ValueError("Use an absolute http or https URL of at most 2000 characters.")
    return url


def normalize_settings(
    *,
    language: str | None,
    redirect_url: str | None,
    allowed_origins: Sequence[str] | None,
) -> tuple[dict[str, Any], list[FieldError]]:
    """Check the form settings that were sent; return the normalized values and the errors."""
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    if language is not None:
        try:
            values["language"] = normalize_language(language)
        except ValueError as exc:
            errors.append(
                FieldError(field="language", message=str(exc), code="unsupported_language")
            )
    if redirect_url is not None:
        try:
            values["redirect_url"] = (
                normalize_redirect_url(redirect_url) if redirect_url.strip() else None
            )
        except ValueError as exc:
            errors.append(FieldError(field="redirect_url", message=str(exc), code="invalid_url"))
    if allowed_origins is not None:
        if len(allowed_origins) > MAX_ALLOWED_ORIGINS:
            errors.append(
                FieldError(
                    field="allowed_origins",
                    message=f"List at most {MAX_ALLOWED_ORIGINS} origins.",
                    code="too_long",
                )
            )
        origins: list[str] = []
        for index, origin in enumerate(allowed_origins):
            try:
                normalized = normalize_origin(origin)
            except ValueError as exc:
                errors.append(
                    FieldError(
                        field=f"allowed_origins.{index}", message=str(exc), code="invalid_origin"
                    )
                )
                continue
            if normalized not in origins:
                origins.append(normalized)
        values["allowed_origins"] = origins
    return values, errors


class _AnswerError(Exception):
    def __init__(self, code: str, *, message_code: str | None = None, **params: object) -> None:
        super().__init__(code)
        self.code = code
        # The text to show when it is more precise than the code's own, as for a flag.
        self.message_code = message_code or code
        self.params = params


def validate_answers(
    fields: Sequence[Mapping[str, Any]],
    raw: Mapping[str, Any],
    *,
    default_country: str,
    language: str,
) -> tuple[dict[str, Any], dict[str, bool], list[FieldError]]:
    """Validate and normalize submitted answers against a form's field definitions.

    ``raw`` maps field keys to JSON values (a browser's form post is converted first).
    Returns the answers of the non-consent fields that have a value, whether each consent
    field was given, and one error per invalid field; error messages are in ``language``.
    A key that is not a field of the form is an error.
    """
    answers: dict[str, Any] = {}
    consents: dict[str, bool] = {}
    errors: list[FieldError] = []
    keys = {definition["key"] for definition in fields}
    for key in raw:
        if key not in keys:
            errors.append(
                FieldError(
                    field=str(key)[:100],
                    message=error_message(language, "unknown_field"),
                    code="unknown_field",
                )
            )
    for definition in fields:
        key = definition["key"]
        try:
            value = _answer(definition, raw.get(key), default_country)
        except _AnswerError as exc:
            errors.append(
                FieldError(
                    field=key,
                    message=error_message(language, exc.message_code, **exc.params),
                    code=exc.code,
                )
            )
            continue
        if definition["type"] == "consent":
            consents[key] = bool(value)
        elif value is not None:
            answers[key] = value
    return answers, consents, errors


def _answer(definition: Mapping[str, Any], value: Any, default_country: str) -> Any:
    kind = definition["type"]
    required = bool(definition.get("required"))
    rules = definition.get("validation") or {}

    if kind == "file":
        return _upload_tokens(definition, value)

    if kind in BOOLEAN_TYPES:
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise _AnswerError("invalid_type", message_code="boolean_type")
        if required and not value:
            raise _AnswerError("consent_required" if kind == "consent" else "required")
        return value

    if kind == "multi_choice":
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _AnswerError("invalid_type")
        chosen: list[str] = []
        allowed = {option["value"] for option in definition.get("options") or []}
        for item in value:
            item = item.strip()
            if not item:
                continue
            if item not in allowed:
                raise _AnswerError("invalid_choice")
            if item not in chosen:
                chosen.append(item)
        if not chosen:
            if required:
                raise _AnswerError("required")
            return None
        return chosen

    if value is None or (isinstance(value, str) and is_blank(value)):
        if required:
            raise _AnswerError("required")
        return None

    if kind == "number":
        return _number(value, rules)
    if not isinstance(value, str):
        raise _AnswerError("invalid_type")
    text = _clean_text(value, multiline=kind == "long_text")
    if is_blank(text):
        # Only control and invisible characters: as empty as blank text.
        if required:
            raise _AnswerError("required")
        return None
    if kind == "choice":
        if text not in {option["value"] for option in definition.get("options") or []}:
            raise _AnswerError("invalid_choice")
        return text
    if kind == "date":
        return _date(text)
    if kind == "email":
        try:
            text = normalize_email(text)
        except InvalidValue as exc:
            raise _AnswerError(exc.code) from exc
    elif kind == "phone":
        try:
            text = normalize_phone(text, default_country)
        except InvalidValue as exc:
            raise _AnswerError(exc.code) from exc
    _check_text(text, kind, rules)
    return text


def _upload_tokens(definition: Mapping[str, Any], value: Any) -> list[str] | None:
    """Return the upload tokens of a file answer: one token or a list of them."""
    if value is None or value == "":
        value = []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _AnswerError("invalid_type")
    tokens = list(dict.fromkeys(item.strip() for item in value if item.strip()))
    max_files = (definition.get("file") or {}).get("max_files", 1)
    if len(tokens) > max_files:
        raise _AnswerError("too_many_files", max=max_files)
    if not tokens:
        if definition.get("required"):
            raise _AnswerError("required")
        return None
    return tokens


def _clean_text(value: str, *, multiline: bool) -> str:
    text = _LINE_BREAKS.sub("\n", value)
    text = _CONTROL_CHARACTERS.sub("", text)
    if not multiline:
        text = text.replace("\n", " ")
    return text.strip()


def _check_text(text: str, kind: str, rules: Mapping[str, Any]) -> None:
    """Check lengths and pattern on the normalized answer (lower-cased email, E.164 phone)."""
    max_length = rules.get("max_length") or DEFAULT_MAX_LENGTH[kind]
    min_length = rules.get("min_length")
    if min_length is not None and len(text) < min_length:
        raise _AnswerError("too_short", min=min_length)
    if len(text) > max_length:
        raise _AnswerError("too_long", max=max_length)
    pattern = rules.get("pattern")
    if pattern is not None and compile_pattern(pattern).fullmatch(text) is None:
        raise _AnswerError("pattern_mismatch")


def _number(value: Any, rules: Mapping[str, Any]) -> int | float:
    if isinstance(value, bool):
        raise _AnswerError("invalid_type")
    if isinstance(value, str):
        text = value.strip()
        if not _NUMBER_PATTERN.match(text):
            raise _AnswerError("invalid_number")
        if _INTEGER_PATTERN.match(text) and len(text) <= 30:
            number: int | float = int(text)
        elif _INTEGER_PATTERN.match(text):
            # Too many digits to be exact; int() would also refuse over 4,300 of them.
            raise _AnswerError(
                "too_small" if text.startswith("-") else "too_large",
                min=str(-MAX_EXACT_INTEGER),
                max=str(MAX_EXACT_INTEGER),
            )
        else:
            number = float(text)
    elif isinstance(value, (int, float)):
        number = value
    else:
        raise _AnswerError("invalid_type")
    if not math.isfinite(number):
        raise _AnswerError("invalid_number")
    # Past 2^53 - 1 a double cannot represent every whole number, so such an answer would come
    # back changed from storage or from a JavaScript client. It is rejected, not rounded.
    if number > MAX_EXACT_INTEGER:
        raise _AnswerError("too_large", max=str(MAX_EXACT_INTEGER))
    if number < -MAX_EXACT_INTEGER:
        raise _AnswerError("too_small", min=str(-MAX_EXACT_INTEGER))
    if isinstance(number, float) and number.is_integer() and abs(number) < 2**53:
        number = int(number)
    minimum, maximum = rules.get("min"), rules.get("max")
    if minimum is not None and number < minimum:
        raise _AnswerError("too_small", min=_format_number(minimum))
    if maximum is not None and number > maximum:
        raise _AnswerError("too_large", max=_format_number(maximum))
    return number


def _format_number(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _date(text: str) -> str:
    if not _DATE_PATTERN.match(text):
        raise _AnswerError("invalid_date")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise _AnswerError("invalid_date") from exc
