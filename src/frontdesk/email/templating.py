"""Render email templates that workspaces write themselves.

A template is a subject, an HTML or Markdown body and an optional plain text body, all
Jinja2 sources, plus a declared schema of the variables it uses. The template author is
trusted less than the product, so:

- Every source renders in Jinja2's ``ImmutableSandboxedEnvironment``. Only a short list of
  functions and methods may be called. Loops, calls and the size of every value that
  rendering creates are counted against per-render limits, which bound the time and
  memory one render takes. There is no wall-clock timeout, so work the counters do not
  see, such as sorting a large list from the data, is bounded only by the data size.
- An HTML body is sanitized before rendering (its Jinja2 tags survive, see
  ``sanitize_html``) and the rendered HTML is sanitized again, because a value can put a
  ``javascript:`` URL into an ``href``. Values are HTML-escaped and ``|safe`` and
  ``{% autoescape %}`` are not available.
- A Markdown body is rendered by Jinja2 first and by markdown-it-py second, so loops and
  conditions can produce list items and table rows. Everything a ``{{ }}`` tag prints is
  escaped for Markdown before it enters the source: every ASCII punctuation character
  gets a backslash, leading spaces become character references and line breaks become
  spaces. A value such as ``**x**`` therefore renders as the literal text, and ``<b>`` as
  text because raw HTML is disabled in the Markdown parser. The output of a macro, call
  block or ``{% set %}`` block stays Markdown, because its values were escaped inside
  it, until an operator or filter changes it. The price is that a value cannot contain a
  line break.

``check_template`` and ``check_data`` return every problem at once, and ``render_template``
raises ``TemplateRenderError`` with the same list, so one response can show them all.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import secrets
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from html.parser import HTMLParser
from types import MethodType, TracebackType
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import css_inline
import nh3
from jinja2 import StrictUndefined, Template, Undefined, meta, nodes
from jinja2 import exceptions as jinja_exceptions
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Cycler, Joiner, Namespace
from markdown_it import MarkdownIt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from frontdesk.email.composer import MAX_SUBJECT_LENGTH, RenderedEmail, single_line
from frontdesk.email.htmltext import MAX_HTML_TAGS, count_start_tags, html_to_text

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_MAX_OUTPUT_CHARS",
    "RESERVED_NAMES",
    "VARIABLE_TYPES",
    "TemplateError",
    "TemplateRenderError",
    "TemplateSource",
    "VariableSpec",
    "check_data",
    "check_template",
    "escape_markdown",
    "html_to_text",
    "inline_css",
    "render_template",
    "sample_data",
    "sanitize_html",
]

# Per-part limit of rendered characters, an estimate set well above the size of an email
# that mail clients show in full.
DEFAULT_MAX_OUTPUT_CHARS = 500_000
# Loop iterations plus function and macro calls in one render, all parts together.
DEFAULT_MAX_ITERATIONS = 10_000
# Characters of all values created during one render (output, filter and call results,
# concatenations), as a multiple of max_output_chars. Bounds memory when a template builds
# large values that it never outputs.
CREATED_CHARS_FACTOR = 10
# Nesting depth of macro, caller and recursive loop calls; far below Python's recursion
# limit, because each call uses several interpreter frames.
MAX_CALL_DEPTH = 50
# Largest integer that multiplication or powers may produce, in bits.
MAX_INTEGER_BITS = 4096
MAX_SOURCE_CHARS = 200_000
# Blocks of one <style> element. css-inline's time grows with rules times elements: 7,000
# rules on 6,000 elements took it 2.5 s on a 2-core development machine.
MAX_CSS_RULES = 1000

# Jinja2 operators and literals, names that Jinja2 defines inside loops, macros and call
# blocks, and the functions the sandbox provides. A variable with such a name could not be
# read or would hide the function.
RESERVED_NAMES = frozenset(
    "and or not in is if else true false none loop self caller varargs kwargs super "
    "range dict namespace cycler joiner".split()
)

VariableType = Literal[
    "string", "number", "integer", "boolean", "date", "datetime", "url", "list", "object"
]
VARIABLE_TYPES: tuple[str, ...] = get_args(VariableType)
URL_SCHEMES = ("http", "https")


# --- Errors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateError:
    """One problem of a template or of its data, in the ``{field, code, message}`` form of
    the API's problem responses. ``line`` is the 1-based line in the field's source."""

    field: str
    code: str
    message: str
    line: int | None = None


class TemplateRenderError(Exception):
    """Raised by ``render_template`` with every problem it found."""

    def __init__(self, errors: list[TemplateError]) -> None:
        super().__init__("; ".join(f"{error.field}: {error.message}" for error in errors))
        self.errors = errors


class _LimitExceeded(Exception):
    """A limit of the sandbox was reached; ``code`` is the TemplateError code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- Variable schema ------------------------------------------------------------------


class VariableSpec(BaseModel):
    """A variable that a template may use, with its type and an example for previews."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    type: VariableType
    required: bool = True
    sample: Any = None
    description: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _check_sample(self) -> VariableSpec:
        if self.name in RESERVED_NAMES:
            raise ValueError(f"name {self.name!r} is reserved in templates; choose another name")
        if self.sample is not None:
            problem = _type_problem(self.type, self.sample)
            if problem is not None:
                raise ValueError(f"sample {problem}")
        return self


def _type_problem(variable_type: str, value: Any) -> str | None:
    """Describe why ``value`` does not fit ``variable_type``, or return None if it does.

    Dates and datetimes may be Python objects or ISO 8601 strings as JSON carries them.
    A datetime must include its UTC offset.
    """
    if variable_type == "string":
        return None if isinstance(value, str) else "must be a string"
    if variable_type == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number"
    if variable_type == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if variable_type == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if variable_type == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return None
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
            except ValueError:
                pass
            else:
                return None
        return "must be a date in the form YYYY-MM-DD"
    if variable_type == "datetime":
        parsed = value
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
        if not isinstance(parsed, datetime):
            return "must be an ISO 8601 date and time such as 2026-01-31T09:30:00Z"
        if parsed.utcoffset() is None:
            return "must include a UTC offset such as Z or +01:00"
        return None
    if variable_type == "url":
        if not isinstance(value, str):
            return "must be a URL string"
        parts = urlsplit(value)
        if parts.scheme.lower() not in URL_SCHEMES or not parts.netloc:
            return "must be an absolute http or https URL"
        if any(character.isspace() for character in value):
            return "must be a URL without spaces"
        return None
    if variable_type == "list":
        return None if isinstance(value, list | tuple) else "must be a list"
    if variable_type == "object":
        if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
            return None
        return "must be an object with string keys"
    return f"has the unsupported type {variable_type!r}"


def check_data(variables: Sequence[VariableSpec], data: Mapping[str, Any]) -> list[TemplateError]:
    """Return the missing required variables, unknown keys and type mismatches of ``data``.

    A null value counts as missing. Each error names its field as ``data.<name>``.
    """
    errors: list[TemplateError] = []
    declared = {variable.name: variable for variable in variables}
    for variable in variables:
        value = data.get(variable.name)
        if value is None:
            if variable.required:
                errors.append(
                    TemplateError(
                        f"data.{variable.name}",
                        "missing_variable",
                        f"The required variable '{variable.name}' is missing. "
                        f"Send a {variable.type} value for it or mark it as optional.",
                    )
                )
            continue
        problem = _type_problem(variable.type, value)
        if problem is not None:
            errors.append(
                TemplateError(
                    f"data.{variable.name}",
                    "wrong_type",
                    f"The variable '{variable.name}' {problem}; "
                    f"its declared type is {variable.type}.",
                )
            )
    for key in data:
        if key not in declared:
            errors.append(
                TemplateError(
                    f"data.{key}",
                    "unknown_variable",
                    f"The template declares no variable '{key}'. "
                    "Remove it from the data or declare it.",
                )
            )
    return errors


_TYPE_DEFAULTS: dict[str, Any] = {
    "number": 42.5,
    "integer": 3,
    "boolean": True,
    "date": date(2026, 1, 31),
    "datetime": datetime(2026, 1, 31, 9, 30, tzinfo=UTC),
    "url": "https://example.com/",
    "object": {},
}


def sample_data(variables: Sequence[VariableSpec]) -> dict[str, Any]:
    """Build preview data from each variable's sample, or a default of its type.

    A string without a sample shows its own name in brackets, such as ``[first_name]``, and
    a list two such strings, so a preview makes clear where each value goes. An object
    without a sample is empty, so a template that reads its attributes needs a sample to
    render a preview.
    """
    data: dict[str, Any] = {}
    for variable in variables:
        if variable.sample is not None:
            data[variable.name] = variable.sample
        elif variable.type == "string":
            data[variable.name] = f"[{variable.name}]"
        elif variable.type == "list":
            data[variable.name] = [f"[{variable.name} 1]", f"[{variable.name} 2]"]
        else:
            data[variable.name] = _TYPE_DEFAULTS[variable.type]
    return data


def _render_value(variable_type: str, value: Any) -> Any:
    """Turn ISO strings of date and datetime variables into objects a template can format."""
    if variable_type == "date" and isinstance(value, str):
        return date.fromisoformat(value)
    if variable_type == "datetime" and isinstance(value, str):
        return datetime.fromisoformat(value)
    return value


# --- Template sources -----------------------------------------------------------------


class TemplateSource(BaseModel):
    """The Jinja2 sources of one template. An empty ``text`` means the plain text part is
    generated from the rendered HTML."""

    model_config = ConfigDict(extra="forbid")

    subject: str
    body_format: Literal["html", "markdown"] = "html"
    body: str
    text: str | None = None


# --- Sandbox --------------------------------------------------------------------------


class _Budget:
    """Counters of one render, shared by its subject, body and text."""

    def __init__(self, max_output_chars: int, max_iterations: int) -> None:
        self.max_output_chars = max_output_chars
        self.max_iterations = max_iterations
        self.max_created_chars = max_output_chars * CREATED_CHARS_FACTOR
        self.steps = 0
        self.created_chars = 0
        self.depth = 0

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > self.max_iterations:
            raise _LimitExceeded(
                "too_many_iterations",
                f"The template ran more than {self.max_iterations} loop iterations and calls. "
                "Loop over fewer items or remove the recursion.",
            )

    def check_size(self, size: int) -> None:
        """Reject a value of ``size`` characters or items before it is built."""
        if size > self.max_output_chars:
            raise _LimitExceeded(
                "value_too_large",
                f"The template builds a value of {size} characters or items, more than "
                f"the limit of {self.max_output_chars}. Repeat or pad values less.",
            )

    def charge(self, value: Any) -> None:
        """Count a value that rendering created against the limits."""
        if isinstance(value, str | list | tuple | bytes):
            size = len(value)
            self.check_size(size)
            self.created_chars += size
            if self.created_chars > self.max_created_chars:
                raise _LimitExceeded(
                    "output_too_large",
                    f"The template creates more than {self.max_created_chars} characters "
                    "of values while rendering. Output less or use fewer loop iterations.",
                )


_DEFAULT_BUDGET_LIMITS = (DEFAULT_MAX_OUTPUT_CHARS, DEFAULT_MAX_ITERATIONS)
_current_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "frontdesk_template_budget", default=None
)


def _budget() -> _Budget:
    """Return the budget of the render in progress. Jinja2 also evaluates constant
    expressions while compiling; those get a fresh budget with the default limits."""
    budget = _current_budget.get()
    return budget if budget is not None else _Budget(*_DEFAULT_BUDGET_LIMITS)


class _CountedIterable:
    """An iterable that counts each item a ``for`` loop takes from it."""

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable
        self._budget = _budget()

    def __iter__(self) -> Iterator[Any]:
        for item in self._iterable:
            self._budget.step()
            yield item

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


def _counted_range(*args: int) -> range:
    """``range`` whose length is charged to the iteration limit when it is created."""
    budget = _budget()
    numbers = range(*args)
    if len(numbers) > budget.max_iterations:
        raise _LimitExceeded(
            "too_many_iterations",
            f"range() of {len(numbers)} numbers exceeds the limit of {budget.max_iterations} "
            "iterations. Use a smaller range.",
        )
    budget.step(len(numbers))
    return numbers


class _CodeGenerator(CodeGenerator):
    """Jinja2's code generator with counted ``for`` loops, size-checked ``~`` and every
    printed expression passed to finalize at run time."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("count_iterations"), [node.iter], [], None, None
        )
        super().visit_For(node, frame)

    def _output_child_to_const(
        self, node: nodes.Expr, frame: Frame, finalize: CodeGenerator._FinalizeInfo
    ) -> str:
        # Jinja2 folds constant expressions at compile time and escapes them before
        # finalize, so the printed value would skip the checks of the finalize function.
        if not isinstance(node, nodes.TemplateData):
            raise nodes.Impossible()
        return super()._output_child_to_const(node, frame, finalize)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_value(")
        super().visit_Concat(node, frame)
        self.write(")")


# Methods a template may call, by the type they are bound to. Anything else, such as
# int.to_bytes or str.format, raises SecurityError.
_ALLOWED_METHODS: dict[type, frozenset[str]] = {
    str: frozenset(
        "capitalize casefold center count endswith find index isalnum isalpha isdecimal "
        "isdigit islower isnumeric isspace istitle isupper join ljust lower lstrip partition "
        "removeprefix removesuffix replace rfind rindex rjust rpartition rsplit rstrip split "
        "splitlines startswith strip swapcase title upper zfill".split()
    ),
    dict: frozenset({"get", "items", "keys", "values"}),
    list: frozenset({"count", "index"}),
    tuple: frozenset({"count", "index"}),
    date: frozenset({"isoformat", "isoweekday", "strftime", "weekday"}),
    datetime: frozenset(
        {"date", "isoformat", "isoweekday", "strftime", "time", "timestamp", "weekday"}
    ),
    LoopContext: frozenset({"cycle", "changed"}),
    Cycler: frozenset({"next", "reset"}),
}
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_string_method(budget: _Budget, text: str, name: str, args: tuple[Any, ...]) -> None:
    """Reject a call of a str method whose result would exceed the value size limit."""
    if name in _PADDING_METHODS and args and isinstance(args[0], int):
        budget.check_size(args[0])
    elif name == "replace" and len(args) >= 2:
        _check_replace(budget, text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "join" and args:
        items = args[0]
        if isinstance(items, list | tuple):
            lengths = sum(len(item) for item in items if isinstance(item, str))
            budget.check_size(lengths + len(text) * max(len(items) - 1, 0))


def _check_replace(budget: _Budget, text: Any, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return
    occurrences = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        occurrences = min(occurrences, count)
    budget.check_size(len(text) + occurrences * (len(new) - len(old)))


class _SandboxedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with the limits of ``_Budget`` applied to loops, calls and operators."""

    code_generator_class = _CodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(
        self,
        *,
        autoescape: bool,
        finalize: Callable[[Any], Any],
        concat: Callable[[Iterable[str]], str],
    ) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=StrictUndefined,
            finalize=finalize,
            # The optimizer evaluates constant expressions while compiling, outside the
            # limits of a render.
            optimized=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.concat = concat  # type: ignore[method-assign]
        self.globals = {
            "range": _counted_range,
            "dict": dict,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
        }
        self._allowed_globals = tuple(self.globals.values())
        for name in _UNSAFE_FILTERS:
            self.filters.pop(name, None)
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _checked_filter(self.filters[name], check)
        for name, function in list(self.filters.items()):
            if name not in _FILTER_CHECKS:
                self.filters[name] = _checked_filter(function, None)

    def count_iterations(self, iterable: Any) -> _CountedIterable:
        return _CountedIterable(iterable)

    def _is_count_iterations(self, obj: Any) -> bool:
        return (
            isinstance(obj, MethodType)
            and obj.__func__ is _SandboxedEnvironment.count_iterations
            and obj.__self__ is self
        )

    def checked_value(self, value: Any) -> Any:
        _budget().charge(value)
        return value

    def is_safe_callable(self, obj: Any) -> bool:
        if isinstance(obj, Macro | LoopContext | Cycler | Joiner):
            return True
        if any(obj is allowed for allowed in self._allowed_globals):
            return True
        if self._is_count_iterations(obj):
            return True
        owner = getattr(obj, "__self__", None)
        name = getattr(obj, "__name__", "")
        for owner_type, names in _ALLOWED_METHODS.items():
            # Markup, a str subclass, wraps the same methods.
            if type(owner) is owner_type or (owner_type is str and isinstance(owner, str)):
                return name in names
        return False

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = _budget()
        if not __self._is_count_iterations(__obj):
            budget.step()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and __self.is_safe_callable(__obj):
            _check_string_method(budget, owner, __obj.__name__, args)
        if budget.depth >= MAX_CALL_DEPTH:
            raise _LimitExceeded(
                "recursion_too_deep",
                f"Macro or loop calls are nested more than {MAX_CALL_DEPTH} levels deep. "
                "Remove the recursion or give it an end condition.",
            )
        budget.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        budget.charge(result)
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        if operator == "*":
            _check_multiplication(budget, left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                budget.check_size(len(left) + len(right))
        elif operator == "%" and isinstance(left, str):
            _check_format_widths(budget, left)
        result = super().call_binop(context, operator, left, right)
        budget.charge(result)
        return result


def _check_multiplication(budget: _Budget, left: Any, right: Any) -> None:
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple | bytes) and isinstance(count, int):
            budget.check_size(len(sequence) * max(count, 0))
            return
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise _LimitExceeded(
                "value_too_large",
                f"The product has more than {MAX_INTEGER_BITS} bits. Use smaller numbers.",
            )


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1:
        if exponent > 0 and base.bit_length() * exponent > MAX_INTEGER_BITS:
            raise _LimitExceeded(
                "value_too_large",
                f"The power has more than {MAX_INTEGER_BITS} bits. Use a smaller exponent.",
            )


def _check_format_widths(budget: _Budget, template: str) -> None:
    """Reject printf-style widths and precisions above the value size limit, and ``*``,
    whose width would come from an argument.

    The scan follows the conversion syntax of Python's ``%`` operator, including mapping
    keys with nested brackets, and takes linear time.
    """
    index = template.find("%")
    while 0 <= index < len(template) - 1:
        index += 1
        if template[index] == "(":
            depth = 1
            index += 1
            while index < len(template) and depth:
                depth += {"(": 1, ")": -1}.get(template[index], 0)
                index += 1
        while index < len(template) and template[index] in "-#0 +":
            index += 1
        for _part in ("width", "precision"):
            start = index
            while index < len(template) and (template[index].isdigit() or template[index] == "*"):
                index += 1
            number = template[start:index]
            if "*" in number:
                raise _LimitExceeded(
                    "unsafe_operation",
                    "A '*' width in a % format is not allowed. Write the width as a number.",
                )
            if number:
                budget.check_size(int(number) if len(number) < 10 else budget.max_output_chars + 1)
            if index < len(template) and template[index] == ".":
                index += 1
            else:
                break
        index = template.find("%", index + 1)


def _checked_concat(pieces: Iterable[str]) -> str:
    """``environment.concat``, which joins the output of macros and block captures."""
    collected = list(pieces)
    budget = _budget()
    budget.check_size(sum(len(piece) for piece in collected))
    return "".join(collected)


# |safe would let a value bypass HTML escaping, and |random would make a preview differ
# from the email sent.
_UNSAFE_FILTERS = ("safe", "random")


# Each check receives the filter's own arguments, starting with the filtered value, without
# the context, evaluation context or environment that Jinja2 passes to some filters.


def _check_width_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # center(value, width) and indent(value, width); indent also takes a string as width.
    width = kwargs.get("width", args[1] if len(args) > 1 else None)
    if isinstance(width, int):
        budget.check_size(width)
    elif isinstance(width, str):
        value = str(args[0]) if args else ""
        budget.check_size(len(value) + len(width) * (value.count("\n") + 1))


def _check_replace_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if len(args) >= 3:
        count = kwargs.get("count", args[3] if len(args) > 3 else None)
        _check_replace(budget, str(args[0]), args[1], args[2], count)


def _check_format_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if args and isinstance(args[0], str):
        _check_format_widths(budget, args[0])


def _check_count_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # batch(value, linecount) and slice(value, slices) build that many rows or slices.
    count = args[1] if len(args) > 1 else None
    if isinstance(count, int):
        budget.step(max(count, 0))


def _check_wordwrap_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    # wordwrap(value, width, break_long_words, wrapstring, ...)
    text = str(args[0]) if args else ""
    width = kwargs.get("width", args[1] if len(args) > 1 else 79)
    wrapstring = kwargs.get("wrapstring", args[3] if len(args) > 3 else "\n")
    if isinstance(width, int) and width < 1:
        raise _LimitExceeded("unsafe_operation", "wordwrap needs a width of at least 1.")
    if isinstance(width, int) and isinstance(wrapstring, str):
        lines = len(text) // width + 1
        budget.check_size(len(text) + lines * len(wrapstring))


def _check_tojson_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    indent = kwargs.get("indent", args[1] if len(args) > 1 else None)
    if isinstance(indent, int) and indent > 16:
        raise _LimitExceeded("unsafe_operation", "tojson accepts an indent of at most 16.")


# round's precision becomes a power of ten: round(3, -1000000000) computes 10 ** 1000000000,
# which takes minutes in one call that no budget check can interrupt.
MAX_ROUND_PRECISION = 30


def _check_round_filter(budget: _Budget, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    precision = kwargs.get("precision", args[1] if len(args) > 1 else 0)
    if isinstance(precision, int) and abs(precision) > MAX_ROUND_PRECISION:
        raise _LimitExceeded(
            "unsafe_operation",
            f"round accepts a precision from -{MAX_ROUND_PRECISION} to {MAX_ROUND_PRECISION}.",
        )


_FilterCheck = Callable[[_Budget, tuple[Any, ...], dict[str, Any]], None]
_FILTER_CHECKS: dict[str, _FilterCheck] = {
    "center": _check_width_filter,
    "indent": _check_width_filter,
    "replace": _check_replace_filter,
    "format": _check_format_filter,
    "batch": _check_count_filter,
    "slice": _check_count_filter,
    "wordwrap": _check_wordwrap_filter,
    "tojson": _check_tojson_filter,
    "round": _check_round_filter,
}


def _checked_filter(function: Callable[..., Any], check: _FilterCheck | None) -> Any:
    """Wrap a filter so its arguments are checked before and its result counted after.

    ``functools.wraps`` copies the ``jinja_pass_arg`` marker, so Jinja2 still passes the
    context, evaluation context or environment first.
    """

    skipped = 0 if getattr(function, "jinja_pass_arg", None) is None else 1

    @functools.wraps(function)
    def checked(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if check is not None:
            check(budget, args[skipped:], kwargs)
        result = function(*args, **kwargs)
        budget.charge(result)
        return result

    return checked


def _check_printable(value: Any) -> None:
    """Reject printing a function, whose text would show a memory address."""
    if callable(value) and not isinstance(value, str | Undefined):
        raise _LimitExceeded(
            "unsafe_operation",
            "The template prints a function or macro instead of its result. "
            "Call it with parentheses.",
        )


def _finalize_html(value: Any) -> Any:
    """Print None as nothing and count each printed value."""
    if value is None:
        return ""
    _check_printable(value)
    _budget().charge(value if isinstance(value, str) else str(value))
    return value


_MARKDOWN_PUNCTUATION = re.compile(r"([!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])")
_LINE_BREAKS = re.compile(r"[\r\n]+")
_LEADING_BLANKS = re.compile(r"^[ \t]+")


def escape_markdown(value: str) -> str:
    """Escape ``value`` so that Markdown renders it as the same plain text on one line.

    CommonMark lets a backslash escape any ASCII punctuation, which covers emphasis, links,
    headings, lists, tables, code spans and entity references. Line breaks become spaces,
    because a break would end a heading or a table row and let the next line start a new
    block. Leading spaces become ``&#32;`` so they cannot start an indented code block.
    Inside a code span the backslashes would stay visible.
    """
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", value))
    return _LEADING_BLANKS.sub(
        lambda match: match.group().replace(" ", "&#32;").replace("\t", "&#9;"), escaped
    )


class _MarkdownText(str):
    """Markdown source built by the template itself: the output of a macro, call block or
    ``{% set %}`` block, in which every value is already escaped. Any str operation on it
    returns a plain str, which is escaped again when printed."""

    __slots__ = ()


def _finalize_markdown(value: Any) -> Any:
    """Escape a printed value for Markdown unless the template built it as Markdown."""
    if value is None:
        return ""
    _check_printable(value)
    if type(value) is _MarkdownText:
        _budget().charge(value)
        return value
    escaped = escape_markdown(str(value))
    _budget().charge(escaped)
    return escaped


def _checked_markdown_concat(pieces: Iterable[str]) -> str:
    """``environment.concat`` of the Markdown sandbox. The pieces are template text and
    escaped values, so the result is Markdown that the template built."""
    return _MarkdownText(_checked_concat(pieces))


def _unchanged(value: Any) -> Any:
    return value


@lru_cache(maxsize=1)
def _environments() -> dict[str, _SandboxedEnvironment]:
    """Build one sandbox per output kind: HTML (autoescaped), Markdown source, plain text.

    The Markdown sandbox does not autoescape. With autoescaping, macro output would be
    Markup, and ``~``, ``+``, ``%``, ``|join`` and ``|replace`` would HTML-escape a value
    joined to Markup instead of escaping it for Markdown. ``_MarkdownText`` marks macro
    output instead, and loses the mark in any such operation.
    """
    html = _SandboxedEnvironment(autoescape=True, finalize=_finalize_html, concat=_checked_concat)
    markdown = _SandboxedEnvironment(
        autoescape=False, finalize=_finalize_markdown, concat=_checked_markdown_concat
    )
    # HTML escaping would show entities, because finalize escapes every value anyway.
    for name in ("e", "escape", "forceescape"):
        markdown.filters[name] = _unchanged
    text = _SandboxedEnvironment(autoescape=False, finalize=_finalize_html, concat=_checked_concat)
    return {"html": html, "markdown": markdown, "text": text}


# --- Checking templates ---------------------------------------------------------------

# Tags whose effect the sandbox cannot allow: autoescape switches escaping off, and the
# others load other templates, which do not exist for workspace templates.
_FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    # Also matches its subclass ScopedEvalContextModifier, the {% autoescape %} block.
    nodes.EvalContextModifier: "autoescape",
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}


@dataclass
class _Part:
    """One source to render: its field name, its sandbox and its Jinja2 source."""

    field: str
    kind: str
    source: str


@lru_cache(maxsize=64)
def _sanitized_template(body: str) -> str:
    return sanitize_html(body)


def _parts(source: TemplateSource) -> list[_Part]:
    parts = [_Part("subject", "text", source.subject)]
    if source.body_format == "markdown":
        parts.append(_Part("body", "markdown", source.body))
    else:
        parts.append(_Part("body", "html", _sanitized_template(source.body)))
    if source.text:
        parts.append(_Part("text", "text", source.text))
    return parts


def _syntax_error(
    field: str, error: jinja_exceptions.TemplateSyntaxError, note: str
) -> TemplateError:
    return TemplateError(
        field,
        "template_syntax",
        f"Line {error.lineno}: {(error.message or 'invalid syntax').rstrip('.')}.{note} "
        "Fix the template tag on that line.",
        line=error.lineno,
    )


@dataclass(frozen=True)
class _Analysis:
    """The schema-independent findings of check_template for one part: syntax errors,
    forbidden tags, and the names the part reads but does not assign, with first lines."""

    errors: tuple[TemplateError, ...]
    names: tuple[tuple[str, int | None], ...]


# Keyed by the sources, which may be up to MAX_SOURCE_CHARS each, so the cache stays small.
@lru_cache(maxsize=64)
def _analyze(kind: str, field: str, source: str, original: str) -> _Analysis:
    """Parse and compile ``source`` and list its problems. Syntax errors are reported
    against ``original``, the source as the author wrote it, unless only the sanitized
    ``source`` fails to parse."""
    try:
        return _analyze_part(kind, field, source, original)
    except (RecursionError, MemoryError):
        # Jinja2's parser and code generator recurse once per nesting level, so a few
        # thousand nested brackets, operators or tags exceed Python's recursion limit.
        error = TemplateError(
            field,
            "template_too_complex",
            f"The {field} nests brackets, operators or tags too deeply to compile. "
            "Simplify the expressions or split the nested blocks.",
        )
        return _Analysis((error,), ())


def _analyze_part(kind: str, field: str, source: str, original: str) -> _Analysis:
    environment = _environments()[kind]
    if source != original:
        try:
            environment.parse(original)
        except jinja_exceptions.TemplateSyntaxError as error:
            return _Analysis((_syntax_error(field, error, ""),), ())
    try:
        tree = environment.parse(source)
        environment.compile(tree, name=field, filename=f"<{field}>")
    except jinja_exceptions.TemplateSyntaxError as error:
        note = (
            " After unsafe HTML was removed the template no longer parses: a template tag "
            "was inside an element or attribute that is not allowed."
            if source != original
            else ""
        )
        return _Analysis((_syntax_error(field, error, note),), ())

    # compile() replaced each loop's iterable in the tree by a counting call, so parse again
    # for the checks, which read the author's expressions.
    tree = environment.parse(source)
    errors: list[TemplateError] = []
    for node_type, tag in _FORBIDDEN_NODES.items():
        for node in tree.find_all(node_type):
            errors.append(
                TemplateError(
                    field,
                    "forbidden_tag",
                    f"Line {node.lineno}: the {tag} tag is not allowed in templates. Remove it.",
                    line=node.lineno,
                )
            )
    first_lines: dict[str, int] = {}
    for name_node in tree.find_all(nodes.Name):
        if name_node.ctx == "load":
            first_lines.setdefault(name_node.name, name_node.lineno)
    undeclared = meta.find_undeclared_variables(tree) - set(environment.globals)
    names = tuple((name, first_lines.get(name)) for name in sorted(undeclared))
    return _Analysis(tuple(errors), names)


def _too_many_tags_error(field: str) -> TemplateError:
    return TemplateError(
        field,
        "too_many_tags",
        f"The {field} has more than {MAX_HTML_TAGS} HTML tags, or produces them. "
        "Simplify the layout or loop over fewer items.",
    )


def check_template(
    source: TemplateSource, variables: Sequence[VariableSpec]
) -> list[TemplateError]:
    """Return the syntax errors, forbidden tags and undeclared variables of ``source``.

    Names assigned by ``{% set %}``, loop variables and macro arguments are not variables of
    the schema. Attributes of a declared object variable are not checked, because the
    schema does not describe them.
    """
    errors: list[TemplateError] = []
    seen: set[str] = set()
    for index, variable in enumerate(variables):
        if variable.name in seen:
            errors.append(
                TemplateError(
                    f"variables[{index}].name",
                    "duplicate_variable",
                    f"The variable '{variable.name}' is declared twice. Remove one.",
                )
            )
        seen.add(variable.name)
    originals = {"subject": source.subject, "body": source.body, "text": source.text or ""}
    size_errors: list[TemplateError] = []
    for field, text in originals.items():
        if len(text) > MAX_SOURCE_CHARS:
            size_errors.append(
                TemplateError(
                    field,
                    "template_too_large",
                    f"The {field} has {len(text)} characters, more than the limit of "
                    f"{MAX_SOURCE_CHARS}. Shorten it.",
                )
            )
    if source.body_format == "html" and count_start_tags(source.body) > MAX_HTML_TAGS:
        size_errors.append(_too_many_tags_error("body"))
    if size_errors:
        # Parsing a source this large would take too long.
        return errors + size_errors
    for part in _parts(source):
        analysis = _analyze(part.kind, part.field, part.source, originals[part.field])
        errors.extend(analysis.errors)
        for name, line in analysis.names:
            if name not in seen:
                errors.append(
                    TemplateError(
                        part.field,
                        "unknown_variable",
                        f"Line {line}: the template uses '{name}', which is not a declared "
                        "variable. Declare it or correct the name.",
                        line=line,
                    )
                )
    return errors


# --- Rendering ------------------------------------------------------------------------


def _error_line(trace: TracebackType | None, filename: str) -> int | None:
    """Return the template line of the innermost frame of ``filename`` in ``trace``."""
    line = None
    for frame in traceback.extract_tb(trace):
        if frame.filename == filename:
            line = frame.lineno
    return line


_MEMORY_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _render_error(field: str, error: Exception) -> TemplateError:
    line = _error_line(error.__traceback__, f"<{field}>")
    where = f"Line {line}: " if line is not None else ""
    if isinstance(error, _LimitExceeded):
        return TemplateError(field, error.code, where + error.message, line=line)
    if isinstance(error, jinja_exceptions.SecurityError):
        return TemplateError(
            field,
            "unsafe_operation",
            # Jinja's reason can name a function with its memory address, which means nothing
            # to the template's author.
            f"{where}the template tried something the sandbox does not allow "
            f"({_MEMORY_ADDRESS.sub('', str(error))}). "
            "Use only variables, filters and the documented functions.",
            line=line,
        )
    if isinstance(error, jinja_exceptions.UndefinedError):
        return TemplateError(
            field,
            "undefined_value",
            f"{where}{error.message}. Check the name, or test it with 'is defined' or "
            "the default filter.",
            line=line,
        )
    if isinstance(error, RecursionError):
        return TemplateError(
            field,
            "recursion_too_deep",
            f"{where}the template recursed too deeply. Remove the recursion.",
            line=line,
        )
    if isinstance(error, MemoryError):
        return TemplateError(
            field,
            "value_too_large",
            f"{where}the template built a value too large to hold in memory.",
            line=line,
        )
    return TemplateError(
        field,
        "render_failed",
        f"{where}rendering failed with {type(error).__name__}: {error}. Fix the expression "
        "on that line.",
        line=line,
    )


@lru_cache(maxsize=64)
def _compiled(kind: str, field: str, source: str) -> Template:
    environment = _environments()[kind]
    code = environment.compile(source, name=field, filename=f"<{field}>")
    return environment.template_class.from_code(
        environment, code, environment.make_globals(None), None
    )


def _render_part(part: _Part, context: dict[str, Any], budget: _Budget) -> str:
    """Render one part, stopping as soon as its output passes ``max_output_chars``."""
    template = _compiled(part.kind, part.field, part.source)
    pieces: list[str] = []
    size = 0
    for piece in template.generate(context):
        size += len(piece)
        if size > budget.max_output_chars:
            raise _LimitExceeded(
                "output_too_large",
                f"The rendered {part.field} is longer than {budget.max_output_chars} "
                "characters. Shorten the template or loop over fewer items.",
            )
        pieces.append(piece)
    return "".join(pieces)


_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_template(
    source: TemplateSource,
    variables: Sequence[VariableSpec],
    data: Mapping[str, Any],
    *,
    max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
) -> RenderedEmail:
    """Render the subject, HTML and plain text of ``source`` with ``data``.

    Raises TemplateRenderError with every problem of the template and the data, or with
    the first error that stopped rendering. The HTML is sanitized after rendering and has
    its CSS inlined. The plain text is ``source.text`` rendered, or derived from the HTML
    when ``source.text`` is empty. Optional variables missing from ``data`` are None, which
    prints as nothing.
    """
    errors = check_template(source, variables) + check_data(variables, data)
    if errors:
        raise TemplateRenderError(errors)

    context = {
        variable.name: _render_value(variable.type, data.get(variable.name))
        for variable in variables
    }
    budget = _Budget(max_output_chars, max_iterations)
    rendered: dict[str, str] = {}
    token = _current_budget.set(budget)
    try:
        for part in _parts(source):
            try:
                rendered[part.field] = _render_part(part, context, budget)
            # Whatever the template's expressions raise is a problem of the template.
            except Exception as error:
                raise TemplateRenderError([_render_error(part.field, error)]) from error
    finally:
        _current_budget.reset(token)

    if source.body_format == "markdown":
        body_html = _MARKDOWN.render(rendered["body"])
    else:
        body_html = rendered["body"]
    if count_start_tags(body_html) > MAX_HTML_TAGS:
        raise TemplateRenderError([_too_many_tags_error("body")])
    try:
        html = inline_css(sanitize_html(body_html, keep_template_tags=False))
    except css_inline.InlineError as error:
        raise TemplateRenderError(
            [
                TemplateError(
                    "body",
                    "invalid_css",
                    f"The CSS of the template could not be inlined ({error}). Fix the "
                    "<style> element.",
                )
            ]
        ) from error
    text = rendered.get("text") or html_to_text(html)
    subject = single_line(rendered["subject"], max_length=MAX_SUBJECT_LENGTH)
    return RenderedEmail(subject=subject, text=text.strip() + "\n", html=html)


# --- CSS ------------------------------------------------------------------------------


def inline_css(html: str) -> str:
    """Copy the rules of ``<style>`` blocks into ``style`` attributes.

    The blocks stay, because media queries cannot be inlined, and ``<link>`` stylesheets
    are neither loaded nor kept. The result is a whole document with ``html``, ``head``
    and ``body`` elements.
    """
    inliner = css_inline.CSSInliner(
        keep_style_tags=True,
        keep_link_tags=False,
        load_remote_stylesheets=False,
    )
    return inliner.inline(html)


# --- Sanitizing -----------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    "a b blockquote br code div em h1 h2 h3 h4 h5 h6 hr i img li ol p pre s span strong "
    "style table tbody td th thead tr u ul center font small sub sup".split()
)
_CELL_ATTRIBUTES = {"colspan", "rowspan", "align", "valign", "width", "height", "bgcolor"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    "*": {"style", "class", "dir", "lang", "title", "align"},
    "a": {"href", "name"},
    "img": {"src", "alt", "width", "height", "border"},
    "table": {"width", "border", "cellpadding", "cellspacing", "bgcolor", "role"},
    "thead": {"valign"},
    "tbody": {"valign"},
    "tr": {"valign", "bgcolor"},
    "td": _CELL_ATTRIBUTES,
    "th": _CELL_ATTRIBUTES,
    "ol": {"start", "type"},
    "li": {"value"},
    "font": {"color", "face", "size"},
}
_URL_SCHEMES_BY_ATTRIBUTE = {
    "href": frozenset({"http", "https", "mailto", "tel"}),
    "src": frozenset({"http", "https", "cid"}),
}
_ALLOWED_STYLE_PROPERTIES = frozenset(
    """background background-color border border-bottom border-collapse border-color
    border-left border-radius border-right border-spacing border-style border-top
    border-width color direction display font font-family font-size font-style font-variant
    font-weight height letter-spacing line-height list-style-type margin margin-bottom
    margin-left margin-right margin-top max-width min-width padding padding-bottom
    padding-left padding-right padding-top table-layout text-align text-decoration
    text-indent text-transform vertical-align white-space width word-break word-spacing
    word-wrap""".split()
)
# CSS that runs code in old browsers (expression, behavior, -moz-binding), loads other
# stylesheets, or hides a word behind escapes or comments.
_UNSAFE_CSS = re.compile(
    r"\\|expression|javascript|vbscript|behavior|-moz-binding|@import|<|/\*|\*/",
    re.IGNORECASE,
)
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
_URL_SCHEME = re.compile(r"^\s*([a-zA-Z][a-zA-Z0-9+.\-]*):")


def _css_is_safe(css: str) -> bool:
    """Return whether ``css`` contains nothing that runs code or loads a non-http URL.

    This is an allowlist check on text, not a CSS parser, so it rejects some harmless CSS
    such as comments and escapes.
    """
    if _UNSAFE_CSS.search(css):
        return False
    for match in _CSS_URL.finditer(css):
        scheme = _URL_SCHEME.match(match.group(1))
        if scheme is None or scheme.group(1).lower() not in ("http", "https", "cid"):
            return False
    return True


def _split_outside_strings(css: str, separator: str) -> list[str] | None:
    """Split ``css`` at ``separator`` where it is not inside a quoted string. Return None
    for an unterminated string, which a browser would read differently."""
    parts: list[str] = []
    start = 0
    index = 0
    while index < len(css):
        character = css[index]
        if character in "\"'":
            end = css.find(character, index + 1)
            if end < 0 or "\n" in css[index:end]:
                return None
            index = end + 1
            continue
        if character == separator:
            parts.append(css[start:index])
            start = index + 1
        index += 1
    parts.append(css[start:])
    return parts


def _clean_declarations(text: str, placeholder: re.Pattern[str] | None) -> str | None:
    """Keep the declarations with allowed properties and safe values. A declaration that
    is only a template tag placeholder is kept too."""
    declarations = _split_outside_strings(text, ";")
    if declarations is None:
        return None
    kept: list[str] = []
    for declaration in declarations:
        declaration = declaration.strip()
        if not declaration:
            continue
        if placeholder is not None and placeholder.fullmatch(declaration):
            kept.append(declaration)
            continue
        name, colon, css_value = declaration.partition(":")
        if not colon or name.strip().lower() not in _ALLOWED_STYLE_PROPERTIES:
            continue
        if _css_is_safe(css_value):
            kept.append(f"{name.strip().lower()}: {css_value.strip()}")
    return "; ".join(kept) if kept else None


def _clean_style(value: str, placeholder: re.Pattern[str] | None) -> str | None:
    """Filter a ``style`` attribute down to allowed declarations."""
    return _clean_declarations(value, placeholder)


class _UncheckableCss(Exception):
    pass


def _filter_stylesheet(css: str, placeholder: re.Pattern[str] | None) -> str | None:
    """Rewrite the content of a ``<style>`` element so that its rules keep only the
    declarations a ``style`` attribute could have, or return None to drop the element.

    Style rules and ``@media`` blocks are kept. Other at-rules (``@font-face``,
    ``@keyframes``, ``@import``, ...) are dropped. The whole element is dropped when it
    fails ``_css_is_safe``, has an unterminated string or unbalanced braces, has more than
    MAX_CSS_RULES blocks, nests ``@media`` blocks, or nests rules inside a style rule,
    because this filter does not read CSS nesting.
    """
    if not _css_is_safe(css) or css.count("{") > MAX_CSS_RULES:
        return None
    try:
        output, end = _filter_rules(css, 0, placeholder, inside_media=False)
    except _UncheckableCss:
        return None
    return output if end >= len(css) else None


def _find_outside_strings(css: str, start: int, characters: str) -> int:
    """Return the index of the first of ``characters`` at or after ``start`` outside a
    quoted string, or len(css)."""
    index = start
    while index < len(css):
        character = css[index]
        if character in "\"'":
            end = css.find(character, index + 1)
            if end < 0 or "\n" in css[index:end]:
                raise _UncheckableCss()
            index = end + 1
            continue
        if character in characters:
            return index
        index += 1
    return index


def _filter_rules(
    css: str, start: int, placeholder: re.Pattern[str] | None, *, inside_media: bool
) -> tuple[str, int]:
    """Filter a list of rules from ``start`` up to the ``}`` that closes an ``@media``
    block, or the end. Return the output and the index after the part read."""
    output: list[str] = []
    index = start
    while index < len(css):
        brace = _find_outside_strings(css, index, "{};")
        prelude = css[index:brace].strip()
        if brace >= len(css) or (mark := css[brace]) == ";":
            # Text before the end or a ";" is a statement at-rule such as @charset, which is
            # dropped, or template tags around the rules, such as an {% endfor %}.
            if _only_placeholders(prelude, placeholder):
                output.append(prelude)
            elif prelude and not prelude.startswith("@"):
                raise _UncheckableCss()
            if brace >= len(css):
                return " ".join(output), brace
            index = brace + 1
            continue
        if mark == "}":
            if not inside_media:
                raise _UncheckableCss()
            if _only_placeholders(prelude, placeholder):
                output.append(prelude)
            elif prelude:
                raise _UncheckableCss()
            return " ".join(output), brace
        lowered = prelude.lower()
        if lowered.startswith("@media"):
            if inside_media:
                raise _UncheckableCss()
            inner, close = _filter_rules(css, brace + 1, placeholder, inside_media=True)
            output.append(f"{prelude} {{ {inner} }}")
            index = close + 1
        elif lowered.startswith("@"):
            index = _skip_block(css, brace + 1) + 1
        else:
            close = _find_outside_strings(css, brace + 1, "{}")
            if close >= len(css) or css[close] == "{":
                raise _UncheckableCss()
            declarations = _clean_declarations(css[brace + 1 : close], placeholder)
            if declarations:
                output.append(f"{prelude} {{ {declarations} }}")
            index = close + 1
    if inside_media:
        raise _UncheckableCss()
    return " ".join(output), index


def _only_placeholders(text: str, placeholder: re.Pattern[str] | None) -> bool:
    return bool(text) and placeholder is not None and not placeholder.sub("", text).strip()


def _skip_block(css: str, start: int) -> int:
    """Return the index of the ``}`` that closes the block opened before ``start``."""
    depth = 1
    index = start
    while depth:
        index = _find_outside_strings(css, index, "{}")
        if index >= len(css):
            raise _UncheckableCss()
        depth += 1 if css[index] == "{" else -1
        index += 1
    return index - 1


def _attribute_filter(
    placeholder: re.Pattern[str] | None,
) -> Callable[[str, str, str], str | None]:
    def filter_attribute(element: str, attribute: str, value: str) -> str | None:
        if attribute == "style":
            return _clean_style(value, placeholder)
        schemes = _URL_SCHEMES_BY_ATTRIBUTE.get(attribute)
        if schemes is not None:
            scheme = _URL_SCHEME.match(value)
            if scheme is not None and scheme.group(1).lower() not in schemes:
                return None
        return value

    return filter_attribute


class _SerializedHtmlFilter(HTMLParser):
    """Copy HTML that nh3 serialized, dropping comments that are not template tag
    placeholders and ``<style>`` blocks whose CSS is not safe."""

    def __init__(self, placeholder: re.Pattern[str] | None) -> None:
        super().__init__(convert_charrefs=False)
        self.placeholder = placeholder
        self.output: list[str] = []
        self.style_start: str | None = None
        self.style_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text = self.get_starttag_text() or ""
        if tag == "style":
            self.style_start = text
            self.style_text = []
        else:
            self.output.append(text)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.output.append(self.get_starttag_text() or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "style" and self.style_start is not None:
            filtered = _filter_stylesheet("".join(self.style_text), self.placeholder)
            if filtered is not None:
                self.output.append(f"{self.style_start}{filtered}</style>")
            self.style_start = None
        else:
            self.output.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self.style_start is not None:
            self.style_text.append(data)
        else:
            self.output.append(data)

    def handle_entityref(self, name: str) -> None:
        self.output.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.output.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        if self.placeholder is not None and self.placeholder.fullmatch(data):
            self.output.append(f"<!--{data}-->")


@dataclass
class _ProtectedSource:
    """HTML whose template tags were replaced by placeholders, with the tags by index."""

    html: str
    tags: list[str]
    prefix: str


# Where a template tag sits in the HTML around it, which decides its placeholder form.
_TEXT, _TAG, _QUOTED_DOUBLE, _QUOTED_SINGLE, _COMMENT, _RAW_TEXT = range(6)
_RAW_START = re.compile(r"<(script|style)\b", re.IGNORECASE)


def _template_tag_end(source: str, start: int) -> int:
    """Return the index after the template tag that starts at ``start``, or -1 if the tag
    is not closed.

    Like Jinja2's lexer, a ``}}`` or ``%}`` inside a string literal or inside brackets
    does not end the tag.
    """
    opener = source[start + 1]
    if opener == "#":
        end = source.find("#}", start + 2)
        return -1 if end < 0 else end + 2
    closer = "}}" if opener == "{" else "%}"
    depth = 0
    index = start + 2
    while index < len(source):
        character = source[index]
        if character in "'\"":
            closing = index + 1
            while closing < len(source) and source[closing] != character:
                closing += 2 if source[closing] == "\\" else 1
            index = closing + 1
            continue
        if depth == 0 and source.startswith(closer, index):
            return index + 2
        if character in "([{":
            depth += 1
        elif character in ")]}" and depth > 0:
            depth -= 1
        index += 1
    return -1


_RAW_BLOCK = re.compile(r"\{%[-+]?\s*raw\s*[-+]?%\}")
_END_RAW_BLOCK = re.compile(r"\{%[-+]?\s*endraw\s*[-+]?%\}")


def _protect_template_tags(source: str) -> _ProtectedSource:
    """Replace each Jinja2 tag with a placeholder that the HTML parser keeps in place.

    In text a tag becomes an HTML comment, which even a table keeps where it is, whereas
    text between table rows would be moved before the table. Inside a start tag it becomes
    a bare token: an attribute value, or an attribute name that the sanitizer allows by
    its prefix. The prefix is random per call, so a template cannot forge a placeholder.
    The content of a ``{% raw %}`` block is HTML, not template tags.
    """
    prefix = f"fdj{secrets.token_hex(6)}n"
    tags: list[str] = []
    output: list[str] = []
    state = _TEXT
    raw_end_tag = ""
    endraw_found = True
    index = 0
    while index < len(source):
        character = source[index]
        if character == "{" and source[index + 1 : index + 2] in ("{", "%", "#"):
            end = _template_tag_end(source, index)
            if end < 0:
                output.append(source[index:])
                break
            tag = source[index:end]
            if _RAW_BLOCK.fullmatch(tag) and endraw_found:
                closing = _END_RAW_BLOCK.search(source, end)
                # Searching again after a miss would make many raw tags quadratic.
                endraw_found = closing is not None
                if closing is not None:
                    output.append(_placeholder(prefix, tags, tag, state))
                    output.append(source[end : closing.start()])
                    output.append(_placeholder(prefix, tags, closing.group(), state))
                    index = closing.end()
                    continue
            output.append(_placeholder(prefix, tags, tag, state))
            index = end
            continue
        state, raw_end_tag = _next_state(source, index, state, raw_end_tag)
        output.append(character)
        index += 1
    return _ProtectedSource("".join(output), tags, prefix)


def _placeholder(prefix: str, tags: list[str], tag: str, state: int) -> str:
    tags.append(tag)
    token = f"{prefix}{len(tags) - 1}x"
    return f"<!--{token}-->" if state == _TEXT else token


def _next_state(source: str, index: int, state: int, raw_end_tag: str) -> tuple[int, str]:
    """Advance a small HTML tokenizer by the character at ``index``.

    It only tracks whether the position is in text, a start tag, a quoted attribute value,
    a comment, or the raw text of a script or style element. Where it disagrees with the
    real parser a template tag can be lost. A lost block tag makes the template fail to
    parse, which check_template reports, but a lost ``{{ }}`` tag just disappears. The
    sanitizer still parses all of the HTML.
    """
    character = source[index]
    if state == _TEXT and character == "<":
        if source.startswith("<!--", index):
            return _COMMENT, raw_end_tag
        raw = _RAW_START.match(source, index)
        if raw is not None:
            return _TAG, f"</{raw.group(1).lower()}"
        following = source[index + 1 : index + 2]
        if following.isalpha() or following in ("/", "!", "?"):
            return _TAG, ""
        return state, raw_end_tag
    if state == _TAG:
        if character == '"':
            return _QUOTED_DOUBLE, raw_end_tag
        if character == "'":
            return _QUOTED_SINGLE, raw_end_tag
        if character == ">":
            return (_RAW_TEXT if raw_end_tag else _TEXT), raw_end_tag
        return state, raw_end_tag
    if state == _QUOTED_DOUBLE and character == '"':
        return _TAG, raw_end_tag
    if state == _QUOTED_SINGLE and character == "'":
        return _TAG, raw_end_tag
    if state == _COMMENT and index >= 2 and source.startswith("-->", index - 2):
        return _TEXT, raw_end_tag
    if state == _RAW_TEXT and source[index : index + len(raw_end_tag)].lower() == raw_end_tag:
        return _TAG, ""
    return state, raw_end_tag


def sanitize_html(html: str, *, keep_template_tags: bool = True) -> str:
    """Remove from ``html`` everything that email clients should not run or load.

    Kept are the text formatting, list, heading, table and image elements that email
    clients render. Links keep http, https, mailto and tel URLs, and images http, https
    and cid URLs. ``style`` attributes and ``<style>`` rules keep common properties (see
    ``_filter_stylesheet``). Scripts, frames, forms, objects, event handler attributes,
    comments and every other URL scheme, including ``javascript:`` and ``data:``, go.

    With ``keep_template_tags`` the Jinja2 tags of a template source (``{{ }}``, ``{% %}``
    and ``{# #}``) come back unchanged in text, attribute values and start tags, and
    relative URLs stay because ``href="{{ url }}"`` looks like one. The output is then
    safe only once ``render_template`` renders it, because a tag is copied as written.
    ``render_template`` sanitizes its output again without this option, which also removes
    relative URLs, since an email has no base URL to resolve them against.

    Raises ValueError for HTML with more than MAX_HTML_TAGS tags. ``check_template``
    reports such a template body as ``too_many_tags``.
    """
    if count_start_tags(html) > MAX_HTML_TAGS:
        raise ValueError(
            f"The HTML has more than {MAX_HTML_TAGS} tags, which would take the parser "
            "too long. Shorten it before sanitizing."
        )
    protected = _protect_template_tags(html) if keep_template_tags else None
    placeholder = (
        re.compile(re.escape(protected.prefix) + r"\d+x") if protected is not None else None
    )
    cleaned = nh3.clean(
        protected.html if protected is not None else html,
        tags=set(_ALLOWED_TAGS),
        clean_content_tags={"script", "textarea", "title", "noscript", "xmp", "iframe"},
        attributes={tag: set(names) for tag, names in _ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter(placeholder),
        strip_comments=protected is None,
        link_rel=None,
        generic_attribute_prefixes={protected.prefix} if protected is not None else None,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        url_relative="pass_through" if protected is not None else "deny",
    )
    post_filter = _SerializedHtmlFilter(placeholder)
    post_filter.feed(cleaned)
    post_filter.close()
    filtered = "".join(post_filter.output)
    if protected is None:
        return filtered
    return _restore_template_tags(filtered, protected)


def _restore_template_tags(html: str, protected: _ProtectedSource) -> str:
    token = re.escape(protected.prefix) + r"(\d+)x"
    pattern = re.compile(rf'<!--{token}-->|{token}=""|{token}')

    def restore(match: re.Match[str]) -> str:
        number = next(group for group in match.groups() if group is not None)
        return protected.tags[int(number)]

    return pattern.sub(restore, html)
