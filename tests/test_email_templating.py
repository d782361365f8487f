"""Workspace email templates: schema, checks, sandboxed rendering, sanitizing and text."""

from __future__ import annotations

import email
import email.policy
import re
import signal
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from frontdesk.email.composer import RenderedEmail
from frontdesk.email.htmltext import html_to_text
from frontdesk.email.templating import (
    TemplateError,
    TemplateRenderError,
    TemplateSource,
    VariableSpec,
    check_data,
    check_template,
    inline_css,
    render_template,
    sample_data,
    sanitize_html,
)

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email"


def spec(name: str, type_: str = "string", **extra: Any) -> VariableSpec:
    return VariableSpec.model_validate({"name": name, "type": type_, **extra})


def html_source(body: str, subject: str = "Hello", text: str | None = None) -> TemplateSource:
    return TemplateSource(subject=subject, body_format="html", body=body, text=text)


def render_errors(
    source: TemplateSource,
    variables: list[VariableSpec] | None = None,
    data: dict[str, Any] | None = None,
    **limits: int,
) -> list[TemplateError]:
    with pytest.raises(TemplateRenderError) as raised:
        render_template(source, variables or [], data or {}, **limits)
    return raised.value.errors


@contextmanager
def finishes_within(seconds: float) -> Iterator[None]:
    """Fail the test instead of hanging when the block runs longer than ``seconds``."""

    def timed_out(signum: int, frame: Any) -> None:
        raise AssertionError(f"did not finish within {seconds} seconds")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- Variable schema -------------------------------------------------------------------


def test_variable_spec_defaults() -> None:
    variable = spec("first_name")
    assert variable.required is True
    assert variable.sample is None
    assert variable.description is None


@pytest.mark.parametrize(
    "name", ["First", "1st", "first-name", "", "a" * 64, "émile", "loop", "none", "range"]
)
def test_variable_spec_rejects_bad_name(name: str) -> None:
    with pytest.raises(ValidationError):
        spec(name)


def test_variable_spec_rejects_extra_field() -> None:
    with pytest.raises(ValidationError):
        VariableSpec.model_validate({"name": "a", "type": "string", "default": "x"})


def test_variable_spec_rejects_unknown_type() -> None:
    with pytest.raises(ValidationError):
        spec("a", "money")


@pytest.mark.parametrize(
    ("type_", "sample"),
    [
        ("string", 3),
        ("number", "3"),
        ("number", True),
        ("integer", 2.5),
        ("boolean", "yes"),
        ("date", "31/01/2026"),
        ("datetime", "2026-01-31T09:30:00"),
        ("url", "javascript:alert(1)"),
        ("url", "/relative"),
        ("list", {"a": 1}),
        ("object", [1]),
    ],
)
def test_variable_spec_rejects_mismatched_sample(type_: str, sample: Any) -> None:
    with pytest.raises(ValidationError, match="sample"):
        spec("a", type_, sample=sample)


@pytest.mark.parametrize(
    ("type_", "sample"),
    [
        ("string", "Ada"),
        ("number", 3),
        ("number", 2.5),
        ("integer", 7),
        ("boolean", False),
        ("date", "2026-01-31"),
        ("date", date(2026, 1, 31)),
        ("datetime", "2026-01-31T09:30:00Z"),
        ("datetime", datetime(2026, 1, 31, tzinfo=UTC)),
        ("url", "https://example.com/path?q=1"),
        ("list", ["a", "b"]),
        ("object", {"name": "Ada"}),
    ],
)
def test_variable_spec_accepts_matching_sample(type_: str, sample: Any) -> None:
    assert spec("a", type_, sample=sample).sample == sample


# --- check_data -----------------------------------------------------------------------


def test_check_data_accepts_valid_data() -> None:
    variables = [spec("name"), spec("total", "number"), spec("note", required=False)]
    assert check_data(variables, {"name": "Ada", "total": 12.5}) == []


def test_check_data_reports_missing_unknown_and_wrong_type() -> None:
    variables = [spec("name"), spec("count", "integer"), spec("when", "date")]
    errors = check_data(variables, {"count": "3", "when": "2026-13-01", "extra": 1})
    by_field = {error.field: error for error in errors}
    assert set(by_field) == {"data.name", "data.count", "data.when", "data.extra"}
    assert by_field["data.name"].code == "missing_variable"
    assert by_field["data.count"].code == "wrong_type"
    assert "integer" in by_field["data.count"].message
    assert by_field["data.when"].code == "wrong_type"
    assert by_field["data.extra"].code == "unknown_variable"


def test_check_data_treats_null_as_missing() -> None:
    errors = check_data([spec("name"), spec("note", required=False)], {"name": None, "note": None})
    assert [(error.field, error.code) for error in errors] == [("data.name", "missing_variable")]


def test_check_data_rejects_naive_datetime() -> None:
    errors = check_data([spec("at", "datetime")], {"at": "2026-01-31T09:30:00"})
    assert errors[0].code == "wrong_type"
    assert "UTC offset" in errors[0].message


def test_check_data_rejects_non_finite_number() -> None:
    errors = check_data([spec("x", "number")], {"x": float("nan")})
    assert errors[0].code == "wrong_type"


# --- check_template --------------------------------------------------------------------


def test_check_template_accepts_valid_template() -> None:
    source = html_source(
        "{% set greeting = 'Hi' %}<p>{{ greeting }} {{ customer.name }}</p>"
        "{% for item in items %}{{ loop.index }} {{ item }}{% endfor %}"
        "{% macro badge(label) %}<b>{{ label }}</b>{% endmacro %}{{ badge('new') }}"
        "{{ range(3)|join(',') }}",
        subject="Order for {{ customer.name }}",
        text="{{ customer.name }}",
    )
    variables = [spec("customer", "object"), spec("items", "list")]
    assert check_template(source, variables) == []


def test_check_template_reports_syntax_error_lines() -> None:
    source = html_source("<p>ok</p>\n<p>{{ name }</p>", subject="{% if %}", text="a\nb\n{{ x ) }}")
    errors = check_template(source, [spec("name"), spec("x")])
    by_field = {error.field: error for error in errors}
    assert set(by_field) == {"subject", "body", "text"}
    assert all(error.code == "template_syntax" for error in errors)
    assert by_field["body"].line == 2
    assert by_field["body"].message.startswith("Line 2: ")
    assert by_field["text"].line == 3
    assert by_field["subject"].line == 1


def test_check_template_reports_unknown_variables() -> None:
    source = html_source(
        "<p>{{ name }}</p>\n<p>{{ nmae }}</p>", subject="{{ order_id }}", text="{{ name }}"
    )
    errors = check_template(source, [spec("name")])
    assert [(error.field, error.code, error.line) for error in errors] == [
        ("subject", "unknown_variable", 1),
        ("body", "unknown_variable", 2),
    ]
    assert "'nmae'" in errors[1].message


@pytest.mark.parametrize(
    ("body", "tag"),
    [
        ("{% autoescape false %}{{ name }}{% endautoescape %}", "autoescape"),
        ("{% include 'other.html' %}", "include"),
        ("{% extends 'base.html' %}", "extends"),
        ("{% import 'macros.html' as m %}", "import"),
        ("{% from 'macros.html' import m %}", "from ... import"),
    ],
)
def test_check_template_rejects_forbidden_tags(body: str, tag: str) -> None:
    errors = check_template(html_source(body), [spec("name")])
    assert [error.code for error in errors] == ["forbidden_tag"]
    assert f"the {tag} tag" in errors[0].message


def test_check_template_rejects_safe_filter() -> None:
    errors = check_template(html_source("{{ name|safe }}"), [spec("name")])
    assert errors[0].code == "template_syntax"
    assert "safe" in errors[0].message


def test_check_template_reports_duplicate_variable() -> None:
    errors = check_template(html_source("{{ b }}"), [spec("a"), spec("a", "number")])
    assert [(error.field, error.code) for error in errors] == [
        ("variables[1].name", "duplicate_variable"),
        ("body", "unknown_variable"),
    ]


def test_check_template_reports_tag_lost_in_sanitizing() -> None:
    source = html_source('<a href="https://x.test" onclick="{% if name %}">x</a>{% endif %}')
    errors = check_template(source, [spec("name")])
    assert [error.code for error in errors] == ["template_syntax"]
    assert "unsafe HTML was removed" in errors[0].message


@pytest.mark.parametrize(
    "body",
    [
        "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
        "{{ " + "+".join(["1"] * 5000) + " }}",
        "{% if a %}" * 500 + "x" + "{% endif %}" * 500,
        "{{ a" + ".b" * 20000 + " }}",
        "{{ " + "not " * 5000 + "a }}",
    ],
)
def test_check_template_rejects_deep_nesting(body: str) -> None:
    errors = check_template(html_source(body), [spec("a", "object")])
    assert [(error.field, error.code) for error in errors] == [("body", "template_too_complex")]


def test_check_template_rejects_huge_source() -> None:
    errors = check_template(html_source("x" * 200_001), [])
    assert [(error.field, error.code) for error in errors] == [("body", "template_too_large")]


# --- render_template -------------------------------------------------------------------


def test_render_escapes_html_values() -> None:
    source = html_source(
        '<p class="greeting">Hello {{ name }}</p><a href="{{ link }}">Open</a>',
        subject="Hello {{ name }}",
    )
    data = {"name": 'Ada <script>alert(1)</script> & "co"', "link": "https://x.test/?a=1&b=2"}
    rendered = render_template(source, [spec("name"), spec("link", "url")], data)
    assert isinstance(rendered, RenderedEmail)
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt; &amp; " in rendered.html
    assert "<script>" not in rendered.html
    assert 'href="https://x.test/?a=1&amp;b=2"' in rendered.html
    assert rendered.subject == 'Hello Ada <script>alert(1)</script> & "co"'
    assert 'Hello Ada <script>alert(1)</script> & "co"' in rendered.text
    assert "Open (https://x.test/?a=1&b=2)" in rendered.text


def test_render_subject_is_one_line() -> None:
    source = html_source("x", subject="{{ a }}\n{% if true %}\nand {{ b }}{% endif %}")
    rendered = render_template(source, [spec("a"), spec("b")], {"a": "One\r\nTwo", "b": "x" * 300})
    assert "\n" not in rendered.subject
    assert "\r" not in rendered.subject
    assert rendered.subject.startswith("One Two and xxx")
    assert len(rendered.subject) == 250


def test_render_uses_text_source_without_escaping() -> None:
    source = html_source("<p>{{ name }}</p>", text="Dear {{ name }},\n\nThanks.")
    rendered = render_template(source, [spec("name")], {"name": "Tom & <Jerry>"})
    assert rendered.text == "Dear Tom & <Jerry>,\n\nThanks.\n"
    assert "Tom &amp; &lt;Jerry&gt;" in rendered.html


def test_render_optional_missing_variable_prints_nothing() -> None:
    source = html_source("<p>Hi{% if nickname %} {{ nickname }}{% endif %}[{{ nickname }}]</p>")
    rendered = render_template(source, [spec("nickname", required=False)], {})
    assert "<p>Hi[]</p>" in rendered.html


def test_render_formats_dates_from_iso_strings() -> None:
    source = html_source("<p>{{ day.strftime('%d %B %Y') }} at {{ at.strftime('%H:%M') }}</p>")
    variables = [spec("day", "date"), spec("at", "datetime")]
    rendered = render_template(source, variables, {"day": "2026-01-31", "at": "2026-01-31T09:30Z"})
    assert "31 January 2026 at 09:30" in rendered.html


def test_render_inlines_css_and_keeps_media_queries() -> None:
    source = html_source(
        "<style>p.lead { color: #333333; } @media (max-width: 600px) { p { font-size: 18px; } }"
        '</style><p class="lead">{{ name }}</p>'
    )
    rendered = render_template(source, [spec("name")], {"name": "Ada"})
    assert re.search(r'<p class="lead" style="color: #333333;?">Ada</p>', rendered.html)
    assert "@media (max-width: 600px)" in rendered.html


def test_render_filters_css_from_values() -> None:
    source = html_source("<style>p { color: {{ colour }} }</style><p>x</p>")
    colour = "red } body { position: fixed; background: url(javascript:alert(1))"
    rendered = render_template(source, [spec("colour")], {"colour": colour})
    assert "position" not in rendered.html
    assert "javascript" not in rendered.html


def test_render_reports_template_and_data_errors_together() -> None:
    source = html_source("<p>{{ name }} {{ coupon }}</p>", subject="{{ order_id }}")
    errors = render_errors(source, [spec("name"), spec("total", "number")], {"total": "12", "x": 1})
    found = {(error.field, error.code) for error in errors}
    assert found == {
        ("subject", "unknown_variable"),
        ("body", "unknown_variable"),
        ("data.name", "missing_variable"),
        ("data.total", "wrong_type"),
        ("data.x", "unknown_variable"),
    }
    assert all(error.message.endswith(".") for error in errors)


def test_render_removes_javascript_url_from_value() -> None:
    source = html_source('<a href="{{ link }}">Open</a><img src="{{ link }}" alt="pic">')
    rendered = render_template(source, [spec("link")], {"link": " JaVaScRiPt:alert(1)"})
    assert "javascript" not in rendered.html.lower()
    assert "<a>Open</a>" in rendered.html


def test_render_reports_missing_attribute() -> None:
    source = html_source("<p>{{ customer.nickname }}</p>")
    errors = render_errors(source, [spec("customer", "object")], {"customer": {"name": "Ada"}})
    assert [(error.field, error.code, error.line) for error in errors] == [
        ("body", "undefined_value", 1)
    ]
    assert "nickname" in errors[0].message


def test_render_reports_runtime_error_line() -> None:
    source = html_source("<p>ok</p>\n\n<p>{{ 1 // count }}</p>")
    errors = render_errors(source, [spec("count", "integer")], {"count": 0})
    assert [(error.code, error.line) for error in errors] == [("render_failed", 3)]
    assert "ZeroDivisionError" in errors[0].message


def test_render_table_loop_keeps_row_order() -> None:
    source = html_source(
        "<table><tr><th>Item</th><th>Price</th></tr>"
        "{% for row in rows %}<tr><td>{{ row.name }}</td><td>{{ row.price }}</td></tr>"
        "{% endfor %}</table>"
    )
    rows = [{"name": "Tea", "price": "3.00"}, {"name": "Cake", "price": "4.50"}]
    rendered = render_template(source, [spec("rows", "list")], {"rows": rows})
    assert "Item | Price\nTea | 3.00\nCake | 4.50" in rendered.text


# --- Sandbox and limits ----------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ self.__init__.__globals__ }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__globals__ }}",
        "{{ items.__class__ }}",
        "{{ items|attr('__class__') }}",
        "{{ (1).to_bytes(8, 'big') }}",
        "{{ '{0.__class__}'.format(items) }}",
        "{{ items.append(1) }}",
        "{{ items.pop() }}",
        "{{ dict.mro() }}",
    ],
)
def test_sandbox_blocks_python_internals(body: str) -> None:
    with finishes_within(5):
        errors = render_errors(html_source(body), [spec("items", "list")], {"items": [1]})
    assert [error.code for error in errors] == ["unsafe_operation"]
    assert errors[0].field == "body"
    assert " at 0x" not in errors[0].message


@pytest.mark.parametrize(
    "body",
    ["{{ config }}", "{{ request }}", "{{ lipsum(1000000) }}", "{{ url_for('x') }}"],
)
def test_sandbox_has_no_framework_globals(body: str) -> None:
    errors = render_errors(html_source(body))
    assert [error.code for error in errors] == ["unknown_variable"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("{{ range(10**9)|list }}", "too_many_iterations"),
        ("{% for i in range(10**9) %}x{% endfor %}", "too_many_iterations"),
        ("{{ 'a' * 10**9 }}", "value_too_large"),
        ("{{ 10**9 * 'a' }}", "value_too_large"),
        ("{{ [1] * 10**9 }}", "value_too_large"),
        ("{{ 10 ** (10**9) }}", "value_too_large"),
        ("{{ 'a'.center(10**9) }}", "value_too_large"),
        ("{{ 'a'.ljust(10**9) }}", "value_too_large"),
        ("{{ 'a'|center(10**9) }}", "value_too_large"),
        ("{{ 'a\\nb'|indent(10**9) }}", "value_too_large"),
        ("{{ ('a' * 1000)|replace('', 'b' * 1000) }}", "value_too_large"),
        ("{{ ('a' * 1000).replace('', 'b' * 1000) }}", "value_too_large"),
        ("{{ '%1000000000d' % 1 }}", "value_too_large"),
        ("{{ '%1000000000d'|format(1) }}", "value_too_large"),
        ("{{ '%*d'|format(10**9, 1) }}", "unsafe_operation"),
        ("{{ '%(a%b)1000000000s' % {'a%b': 1} }}", "value_too_large"),
        ("{{ '%(a(b)c)9999999999s' % {'a(b)c': 1} }}", "value_too_large"),
        ("{{ '%.1000000000f' % 1.5 }}", "value_too_large"),
        ("{{ '%(' * 100000 }}{{ ('%(' * 100000) % {} }}", "render_failed"),
        ("{{ 'abc'.format }}", "unsafe_operation"),
        ("{% macro m() %}x{% endmacro %}{{ m }}", "unsafe_operation"),
        ("{{ [1]|batch(10**9, 0)|list }}", "too_many_iterations"),
        ("{{ [1]|slice(10**9)|list }}", "too_many_iterations"),
        ("{{ ('a b ' * 1000)|wordwrap(1, wrapstring='x' * 1000) }}", "value_too_large"),
        ("{{ 'a b'|wordwrap(0) }}", "unsafe_operation"),
        ("{{ {'a': 1}|tojson(indent=10**9) }}", "unsafe_operation"),
        ("{{ 3|round(-1000000000) }}", "unsafe_operation"),
        ("{{ 3.5|round(precision=10**9, method='ceil') }}", "unsafe_operation"),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "value_too_large",
        ),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}",
            "value_too_large",
        ),
        (
            "{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}"
            "{{ " + "twice(" * 20 + "'abcd'" + ")" * 20 + " }}",
            "value_too_large",
        ),
        ("{% macro down(n) %}{{ down(n + 1) }}{% endmacro %}{{ down(0) }}", "recursion_too_deep"),
        (
            "{% macro fork(n) %}{% if n %}{{ fork(n - 1) }}{{ fork(n - 1) }}{% endif %}"
            "{% endmacro %}{{ fork(40) }}",
            "too_many_iterations",
        ),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursion_too_deep"),
        (
            "{% for i in range(9000) %}{% for j in range(9000) %}{% endfor %}{% endfor %}",
            "too_many_iterations",
        ),
        (
            "{% set big = 'x' * 400000 %}{% for i in range(5000) %}"
            "{% set _ = (big ~ i)|length %}{% endfor %}",
            "output_too_large",
        ),
    ],
)
def test_sandbox_limits_fail_fast(body: str, code: str) -> None:
    tracemalloc.start()
    try:
        with finishes_within(10):
            started = time.monotonic()
            errors = render_errors(html_source(body))
            elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [error.code for error in errors] == [code]
    assert errors[0].message.startswith("Line 1: ")
    assert elapsed < 5
    assert peak < 64 * 1024 * 1024


def test_output_limit_stops_rendering() -> None:
    source = html_source("{% for row in rows %}<p>{{ row }}</p>{% endfor %}")
    rows = ["x" * 100] * 50
    errors = render_errors(source, [spec("rows", "list")], {"rows": rows}, max_output_chars=1000)
    assert [(error.field, error.code) for error in errors] == [("body", "output_too_large")]
    assert "1000" in errors[0].message


def test_output_limit_applies_to_text_part() -> None:
    source = html_source("ok", text="{% for i in range(100) %}{{ line }}{% endfor %}")
    errors = render_errors(source, [spec("line")], {"line": "y" * 50}, max_output_chars=2000)
    assert [(error.field, error.code) for error in errors] == [("text", "output_too_large")]


def test_iteration_limit_counts_data_loops() -> None:
    source = html_source("{% for row in rows %}{{ row }}{% endfor %}")
    variables = [spec("rows", "list")]
    assert render_template(source, variables, {"rows": list(range(50))}, max_iterations=60)
    errors = render_errors(source, variables, {"rows": list(range(61))}, max_iterations=60)
    assert [error.code for error in errors] == ["too_many_iterations"]


def test_markdown_long_value_fails_fast() -> None:
    source = TemplateSource(subject="s", body_format="markdown", body="{{ v }}\n")
    with finishes_within(5):
        rendered = render_template(source, [spec("v")], {"v": " " * 50_000 + "x\n" * 50_000})
    assert rendered.text.startswith("x x x")


def test_limits_allow_ordinary_template() -> None:
    source = html_source(
        "{% for row in rows %}<tr><td>{{ loop.index }}</td><td>{{ row|upper }}</td>"
        "<td>{{ loop.cycle('odd', 'even') }}</td></tr>{% endfor %}"
        "{{ rows|join(', ') }} {{ rows|length }} {{ 'x'.center(5) }} {{ 2 ** 10 }}"
    )
    rendered = render_template(source, [spec("rows", "list")], {"rows": ["a", "b", "c"]})
    assert "a, b, c 3" in rendered.html
    assert "1024" in rendered.html


# --- Markdown -------------------------------------------------------------------------


def markdown_source(body: str) -> TemplateSource:
    return TemplateSource(subject="News", body_format="markdown", body=body)


def test_markdown_renders_author_markup() -> None:
    source = markdown_source(
        "# Hello {{ name }}\n\n"
        "Your **order** is ~~late~~ ready.\n\n"
        "{% for item in items %}\n- {{ item }}\n{% endfor %}\n\n"
        "| Item | Price |\n|---|---|\n{% for item in items %}| {{ item }} | 1 |\n{% endfor %}\n"
        "[Track it]({{ link }})\n"
    )
    variables = [spec("name"), spec("items", "list"), spec("link", "url")]
    data = {"name": "Ada", "items": ["Tea", "Cake"], "link": "https://x.test/t?id=1&k=a_(b)"}
    rendered = render_template(source, variables, data)
    assert "<h1>Hello Ada</h1>" in rendered.html
    assert "<strong>order</strong>" in rendered.html
    assert "<s>late</s>" in rendered.html
    assert "<li>Tea</li>" in rendered.html
    assert "<td>Cake</td>" in rendered.html
    assert 'href="https://x.test/t?id=1&amp;k=a_(b)"' in rendered.html
    assert "Tea | 1\nCake | 1" in rendered.text


@pytest.mark.parametrize(
    "value",
    [
        "**x**",
        "<b>bold</b>",
        "_x_ and `code`",
        "[click](https://evil.test)",
        "![img](https://evil.test/p.png)",
        "# heading",
        "1. item",
        "- item",
        "> quote",
        "a | b",
        "&amp; &lt;",
        "\\*escaped\\*",
        "line one\n\n- line two\n    code",
        "    indented",
        "<script>alert(1)</script>",
        "https://autolink.test",
    ],
)
def test_markdown_value_stays_text(value: str) -> None:
    source = markdown_source(
        "Before {{ v }} after\n\n{{ v }}\n\n# {{ v }}\n\n| a |\n|---|\n| {{ v }} |\n"
    )
    rendered = render_template(source, [spec("v")], {"v": value})
    body = rendered.html.split("<body>", 1)[1]
    tags = set(re.findall(r"</?([a-z0-9]+)", body))
    assert tags <= {"p", "h1", "table", "thead", "tr", "th", "tbody", "td", "body", "html"}
    flat = " ".join(value.split())
    assert f"Before {flat} after" in rendered.text
    assert f"\n\n{flat}\n\n" in rendered.text


def test_markdown_raw_html_in_source_is_text() -> None:
    source = markdown_source('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">\n')
    rendered = render_template(source, [], {})
    assert "<script" not in rendered.html
    assert "<img" not in rendered.html
    assert "&lt;script&gt;" in rendered.html


def test_markdown_javascript_link_is_removed() -> None:
    source = markdown_source("[a](javascript:alert(1)) [b](JAVASCRIPT:alert(1)) [c]({{ v }})\n")
    rendered = render_template(source, [spec("v")], {"v": "javascript:alert(1)"})
    assert 'href="javascript' not in rendered.html.lower()


@pytest.mark.parametrize(
    "body",
    [
        "{{ v|e }}",
        "{{ v|forceescape }}",
        "{{ 'Hi ' ~ v }}",
        "{{ 'Hi ' + v }}",
        "{{ 'Hi %s' % v }}",
        "{{ 'Hi %s'|format(v) }}",
        "{{ ['Hi', v]|join(' ') }}",
        "{{ 'Hi X'|replace('X', v) }}",
        "{% macro bold(x) %}**{{ x }}**{% endmacro %}{{ bold(v) }}",
        "{% macro wrap() %}**{{ caller() }}**{% endmacro %}{% call wrap() %}{{ v }}{% endcall %}",
        "{% set line %}**{{ v }}**{% endset %}{{ line }}",
        "{% set line %}**{{ v }}**{% endset %}{{ line ~ v }}",
    ],
)
def test_markdown_expression_output_stays_text(body: str) -> None:
    source = markdown_source(body + "\n")
    rendered = render_template(source, [spec("v")], {"v": "*x* <b>y</b> [a](https://evil.test)"})
    html_body = rendered.html.split("<body>", 1)[1]
    assert set(re.findall(r"</?([a-z0-9]+)", html_body)) <= {"p", "body", "html", "strong"}
    assert "*x* <b>y</b> [a](https://evil.test)" in rendered.text


def test_markdown_macro_output_stays_markdown() -> None:
    source = markdown_source(
        "{% macro bold(x) %}**{{ x }}**{% endmacro %}{{ bold(v) }} and {{ bold(v)|upper }}\n"
    )
    rendered = render_template(source, [spec("v")], {"v": "*y*"})
    assert "<strong>*y*</strong> and **\\*Y\\***" in rendered.html


@pytest.mark.parametrize("body", ["{{ v|tojson }}", "{{ v|urlize }}"])
def test_markdown_html_filters_stay_text(body: str) -> None:
    source = markdown_source(body + "\n")
    rendered = render_template(source, [spec("v")], {"v": "*x* <b>y</b> https://evil.test"})
    html_body = rendered.html.split("<body>", 1)[1]
    assert set(re.findall(r"</?([a-z0-9]+)", html_body)) <= {"p", "body", "html"}
    assert "*x*" in rendered.text


@settings(max_examples=100, deadline=None)
@given(
    st.text(
        # CommonMark replaces NUL with U+FFFD, so the text would differ.
        alphabet=st.characters(
            codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"
        ),
        max_size=40,
    )
)
def test_values_round_trip_as_text(value: str) -> None:
    expected = " ".join(f"x {value} y".split())
    sources = [
        TemplateSource(subject="s", body_format="html", body="<p>x {{ v }} y</p>"),
        TemplateSource(subject="s", body_format="markdown", body="x {{ v }} y\n"),
        TemplateSource(subject="s", body_format="markdown", body="| a |\n|---|\n| x {{ v }} y |\n"),
    ]
    for source in sources:
        rendered = render_template(source, [spec("v")], {"v": value})
        assert " ".join(rendered.text.split()).removeprefix("a ") == expected


# --- sanitize_html ---------------------------------------------------------------------

DANGEROUS_HTML = [
    '<script>alert("x")</script>',
    "<SCRIPT SRC=https://evil.test/x.js></SCRIPT>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="jAvAsCriPt:alert(1)">x</a>',
    '<a href=" javascript:alert(1)">x</a>',
    '<a href="java\tscript:alert(1)">x</a>',
    '<a href="jav&#x61;script:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="vbscript:msgbox(1)">x</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">x</a>',
    '<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+">',
    "<img src=x onerror=alert(1)>",
    '<img src="https://x.test/p.png" onload="alert(1)">',
    "<svg onload=alert(1)><circle r=1 /></svg>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mtext><script>alert(1)</script></mtext></math>",
    '<iframe src="https://evil.test"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil.test/x.swf"></object>',
    '<embed src="https://evil.test/x.swf">',
    '<form action="https://evil.test"><input name="password"><button>Go</button></form>',
    '<button formaction="javascript:alert(1)">x</button>',
    '<base href="https://evil.test/">',
    '<meta http-equiv="refresh" content="0;url=https://evil.test">',
    '<link rel="stylesheet" href="https://evil.test/x.css">',
    "<style>p { width: expression(alert(1)); }</style>",
    "<style>p { background: url(javascript:alert(1)); }</style>",
    "<style>@import url(https://evil.test/x.css);</style>",
    "<style>p { behavior: url(x.htc); -moz-binding: url(x.xml#x); }</style>",
    "<style>p { width: expr/**/ession(alert(1)); }</style>",
    "<style>p { width: e\\78 pression(alert(1)); }</style>",
    '<p style="width: expression(alert(1))">x</p>',
    '<p style="background-image: url(javascript:alert(1))">x</p>',
    '<p style="background: url(data:image/png;base64,AAAA)">x</p>',
    '<div onclick="alert(1)" onmouseover="alert(1)">x</div>',
    '<p title="x" ONCLICK="alert(1)">x</p>',
    "<!--[if mso]><script>alert(1)</script><![endif]-->",
    "<!--><script>alert(1)</script>-->",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
    '<a href="https://ok.test" target="_blank" rel="opener">x</a><body onload=alert(1)>',
    "<details open ontoggle=alert(1)>x</details>",
    '<video><source onerror="alert(1)"></video>',
    '<img src="cid:logo" dynsrc="javascript:alert(1)" lowsrc="javascript:alert(1)">',
    '<table background="javascript:alert(1)"><tr><td>x</td></tr></table>',
]
FORBIDDEN_PATTERNS = re.compile(
    r"<script|<iframe|<object|<embed|<form|<input|<button|<base|<meta|<link|<svg|<math|"
    r"javascript|vbscript|data:|expression|behavior|binding|@import|\son[a-z]+=|srcdoc|"
    r"formaction|<!--",
    re.IGNORECASE,
)


@pytest.mark.parametrize("html", DANGEROUS_HTML)
@pytest.mark.parametrize("keep_template_tags", [True, False])
def test_sanitize_removes_dangerous_html(html: str, keep_template_tags: bool) -> None:
    cleaned = sanitize_html(html, keep_template_tags=keep_template_tags)
    assert FORBIDDEN_PATTERNS.search(cleaned) is None, cleaned


class _MarkupCollector(HTMLParser):
    """Collect the elements, attributes and comments that a browser would see."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str, str]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend((tag, name, value or "") for name, value in attrs)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


SAFE_TAGS = set(
    "a b blockquote br code div em h1 h2 h3 h4 h5 h6 hr i img li ol p pre s span strong "
    "style table tbody td th thead tr u ul center font small sub sup".split()
)
URL_ATTRIBUTES = {"href", "src"}
FRAGMENTS = [
    *DANGEROUS_HTML,
    "<p>",
    "</p>",
    "<table>",
    "<tr>",
    "<td>",
    "</table>",
    '<a href="',
    '<img src="',
    '"',
    "'",
    "<",
    ">",
    "=",
    " onclick=alert(1) ",
    "javascript:alert(1)",
    "https://ok.test/",
    "<style>",
    "</style>",
    "p { color: red }",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "<svg>",
    "<math>",
    "<noscript>",
    "</noscript>",
    "<textarea>",
    "plain text",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12))
def test_sanitize_output_has_only_allowed_markup(fragments: list[str]) -> None:
    cleaned = sanitize_html("".join(fragments), keep_template_tags=False)
    collector = _MarkupCollector()
    collector.feed(cleaned)
    collector.close()
    assert collector.tags <= SAFE_TAGS
    assert collector.comments == []
    for tag, name, value in collector.attributes:
        assert not name.startswith("on"), (tag, name)
        if name in URL_ATTRIBUTES:
            assert re.match(r"(https?|mailto|tel|cid):", value), (tag, name, value)
        if name == "style":
            assert not re.search(r"expression|javascript|url\((?!https?:)", value, re.I)


def test_sanitize_keeps_email_markup() -> None:
    html = (
        '<h2 align="center">News</h2><p style="color: #333333; font-size: 14px">Hi <b>A</b>'
        "<strong>B</strong><i>C</i><em>D</em><u>E</u><s>F</s><br></p>"
        '<a href="https://x.test/a?b=1">web</a><a href="mailto:a@x.test">mail</a>'
        '<a href="tel:+4912345">call</a>'
        '<img src="https://x.test/logo.png" alt="Logo" width="120" height="40">'
        '<img src="cid:logo@x" alt="Inline">'
        '<table width="600" cellpadding="0"><thead><tr><th colspan="2">T</th></tr></thead>'
        '<tbody><tr><td rowspan="1" align="right">1</td><td>2</td></tr></tbody></table>'
        "<ul><li>a</li></ul><ol><li>b</li></ol><blockquote>q</blockquote><hr>"
        "<pre><code>x = 1</code></pre><div><span>s</span></div>"
    )
    cleaned = sanitize_html(html, keep_template_tags=False)
    for fragment in [
        '<h2 align="center">',
        'style="color: #333333; font-size: 14px"',
        "<b>A</b>",
        "<s>F</s>",
        '<a href="https://x.test/a?b=1">',
        '<a href="mailto:a@x.test">',
        '<a href="tel:+4912345">',
        '<img src="https://x.test/logo.png" alt="Logo" width="120" height="40">',
        '<img src="cid:logo@x" alt="Inline">',
        '<th colspan="2">',
        '<td rowspan="1" align="right">',
        "<blockquote>q</blockquote>",
        "<pre><code>x = 1</code></pre>",
        "<div><span>s</span></div>",
    ]:
        assert fragment in cleaned


def test_sanitize_restricts_schemes_per_attribute() -> None:
    cleaned = sanitize_html(
        '<a href="cid:logo">a</a><img src="mailto:a@x.test"><img src="tel:1">',
        keep_template_tags=False,
    )
    assert cleaned == "<a>a</a><img><img>"


def test_sanitize_keeps_safe_style_block() -> None:
    css = (
        "p { color: red; background: url(https://x.test/bg.png) } "
        "@media (max-width: 600px) { p { margin: 0 } }"
    )
    assert sanitize_html(f"<style>{css}</style><p>x</p>") == f"<style>{css}</style><p>x</p>"


@pytest.mark.parametrize(
    ("css", "kept"),
    [
        ("p { color: red; position: fixed; z-index: 9 }", "p { color: red }"),
        (
            "@media (min-width: 1px) { .a { top: 0; margin: 0 } }",
            "@media (min-width: 1px) { .a { margin: 0 } }",
        ),
        ('p { font-family: "}"; position: fixed }', 'p { font-family: "}" }'),
        ('p { font-family: "a;b"; color: blue }', 'p { font-family: "a;b"; color: blue }'),
        (
            "@font-face { font-family: x; src: url(https://x.test/f.woff) } p { color: red }",
            "p { color: red }",
        ),
        ('@charset "utf-8"; p { color: red }', "p { color: red }"),
        ("p { color: red; span { position: fixed } }", None),
        ("p { color: red", None),
        ("p { color: red } }", None),
        ('p { font-family: "unterminated }', None),
        ("p { color: red } /* x */", None),
        ("@media a { @media b { p { color: red } } }", None),
        ("p { color: red } " * 1001, None),
    ],
)
def test_sanitize_filters_style_rules(css: str, kept: str | None) -> None:
    cleaned = sanitize_html(f"<style>{css}</style>", keep_template_tags=False)
    assert cleaned == ("" if kept is None else f"<style>{kept}</style>")


def test_sanitize_keeps_template_tags() -> None:
    body = (
        '<a href="{{ url }}" title="{{ "a\\"b" ~ name }}">{{ label }}</a>'
        "{% if count > 1 and name < 'z' %}<p>many & more</p>{% endif %}"
        '<table>{% for row in rows %}<tr><td {% if row.hot %}class="hot"{% endif %}>'
        "{{ row.name }}</td></tr>{% endfor %}</table>"
        '<p style="color: {{ colour }}">{# a comment <b> #}x</p>'
        "<style>p { color: {{ colour }}; }{% for c in colours %}.c{{ loop.index }} "
        "{ color: {{ c }} }{% endfor %}</style>"
    )
    cleaned = sanitize_html(body)
    for fragment in [
        '<a href="{{ url }}" title="{{ "a\\"b" ~ name }}">{{ label }}</a>',
        "{% if count > 1 and name < 'z' %}<p>many &amp; more</p>{% endif %}",
        "{% for row in rows %}",
        '<td {% if row.hot %}class="hot" {% endif %}>{{ row.name }}</td>',
        "{% endfor %}",
        '<p style="color: {{ colour }}">{# a comment <b> #}x</p>',
        "<style>p { color: {{ colour }} } {% for c in colours %}.c{{ loop.index }} "
        "{ color: {{ c }} } {% endfor %}</style>",
    ]:
        assert fragment in cleaned, cleaned
    assert cleaned.index("{% for row in rows %}") < cleaned.index("<tr>")
    assert cleaned.index("</tr>") < cleaned.index("{% endfor %}")


def test_sanitize_template_loop_in_table_renders() -> None:
    source = html_source(
        '<table>{% for row in rows %}<tr><td {% if row.hot %}class="hot"{% endif %}>'
        "{{ row.name }}</td></tr>{% endfor %}</table>"
    )
    rows = [{"name": "a", "hot": True}, {"name": "b", "hot": False}]
    rendered = render_template(source, [spec("rows", "list")], {"rows": rows})
    assert re.search(r'<td class="hot"[^>]*>a</td>.*<td[^>]*>b</td>', rendered.html)


def test_sanitize_many_raw_tags_fast() -> None:
    with finishes_within(5):
        cleaned = sanitize_html("{% raw %}x" * 20_000)
    assert cleaned.count("{% raw %}") == 20_000


def test_sanitize_raw_block_content_is_html() -> None:
    cleaned = sanitize_html("{% raw %}<script>alert(1)</script>{{ x }}{% endraw %}")
    assert "<script" not in cleaned
    assert cleaned == "{% raw %}{{ x }}{% endraw %}"


def test_sanitize_template_tag_cannot_hide_markup() -> None:
    source = html_source("{{ '<script>alert(1)</script>' }}<p {{ 'onclick=alert(1)' }}>x</p>")
    rendered = render_template(source, [], {})
    assert "<script" not in rendered.html
    assert "onclick" not in rendered.html


def test_render_sanitizes_values_in_tag_positions() -> None:
    source = html_source("<p {{ attrs }}>x</p><a href={{ link }}>y</a>")
    data = {"attrs": 'onclick="alert(1)" class="a"', "link": "x onmouseover=alert(1)"}
    rendered = render_template(source, [spec("attrs"), spec("link")], data)
    assert "onclick" not in rendered.html
    assert "onmouseover" not in rendered.html
    assert "alert" not in rendered.html


def test_render_removes_relative_urls() -> None:
    source = html_source('<a href="{{ path }}">a</a><a href="#top">b</a><img src="{{ path }}">')
    rendered = render_template(source, [spec("path")], {"path": "/account"})
    assert "<a>a</a><a>b</a><img>" in rendered.html


def test_sanitize_deeply_nested_media_fast() -> None:
    css = "@media a {" * 900 + "p { color: red }" + "}" * 900
    with finishes_within(5):
        assert sanitize_html(f"<style>{css}</style><p>x</p>") == "<p>x</p>"


def test_sanitize_rejects_too_many_tags() -> None:
    with pytest.raises(ValueError, match="10000 tags"):
        sanitize_html("<div>" * 10_001)


def test_check_template_rejects_too_many_tags() -> None:
    errors = check_template(html_source("<div>" * 10_001), [])
    assert [(error.field, error.code) for error in errors] == [("body", "too_many_tags")]


def test_render_rejects_output_with_too_many_tags() -> None:
    source = html_source("{% for i in range(2000) %}<div><div><div><div><div><div>{% endfor %}")
    with finishes_within(5):
        errors = render_errors(source)
    assert [(error.field, error.code) for error in errors] == [("body", "too_many_tags")]


def test_sanitize_rejects_forged_placeholder() -> None:
    cleaned = sanitize_html('<p><!--fdj000000000000n0x--><a fdj000000000000n1x="1">x</a></p>')
    assert cleaned == "<p><a>x</a></p>"


# --- inline_css -----------------------------------------------------------------------


def test_inline_css_moves_rules_into_attributes() -> None:
    html = "<style>h1 { color: blue; } @media (max-width: 600px) { h1 { color: red; } }</style><h1>T</h1>"
    inlined = inline_css(html)
    assert re.search(r'<h1 style="color: blue;?">T</h1>', inlined)
    assert "@media (max-width: 600px)" in inlined


def test_inline_css_does_not_load_remote_stylesheets() -> None:
    html = '<link rel="stylesheet" href="http://127.0.0.1:9/x.css"><p>x</p>'
    with finishes_within(5):
        inlined = inline_css(html)
    assert "<link" not in inlined
    assert "<p>x</p>" in inlined


# --- html_to_text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo\n"),
        ("<div>One</div>Two<div>Three</div>", "One\n\nTwo\n\nThree\n"),
        ("<p>a<br>b<br/>c</p>", "a\nb\nc\n"),
        ("<p>  lots   of \n  space  </p>", "lots of space\n"),
        ("<ul><li>a</li><li>b</li></ul>", "- a\n- b\n"),
        ("<ol><li>a</li><li>b</li></ol>", "1. a\n2. b\n"),
        ("<ol><li>a<ul><li>x</li></ul></li><li>b</li></ol>", "1. a\n   - x\n2. b\n"),
        ("<ul><li>unclosed<li>items</ul>", "- unclosed\n- items\n"),
        ('<a href="https://x.test">Site</a>', "Site (https://x.test)\n"),
        ('<a href="https://x.test">https://x.test</a>', "https://x.test\n"),
        ('<a href="mailto:a@x.test">a@x.test</a>', "a@x.test\n"),
        ('<a href="https://x.test"></a>', "https://x.test\n"),
        ('<a href="https://x.test"><img src="l.png" alt="Logo"></a>', "Logo (https://x.test)\n"),
        ('<img src="a.png" alt="Alt text"><img src="b.png">', "Alt text\n"),
        (
            "<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>",
            "A | B\n1 | 2\n",
        ),
        ("<h1>Title</h1><p>x</p>", "Title\n=====\n\nx\n"),
        ("<h2>Sub</h2><h3>Small</h3>", "Sub\n---\n\nSmall\n"),
        ("<script>var a = '<p>';</script><style>p {}</style><p>x</p>", "x\n"),
        ("<head><title>T</title></head><body><p>x</p></body>", "x\n"),
        ("<p>&amp; &lt;b&gt; &eacute; &#8364; &nbsp;x</p>", "& <b> é € \xa0x\n"),
        ("<blockquote><p>a</p><p>b</p></blockquote>", "> a\n>\n> b\n"),
        ("<pre>a\n    b</pre>", "a\n    b\n"),
        ("<p>a</p><hr><p>b</p>", "a\n\n" + "-" * 40 + "\n\nb\n"),
        ("", ""),
        ("<p> </p>", ""),
    ],
)
def test_html_to_text_cases(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "html",
    [
        "<div>" * 100_000 + "x" + "</p>" * 100_000,
        "<ul><li>a" * 20_000,
        "<table><tr><td>a</td>" * 20_000,
        "<p>" + " " * 500_000 + "x<br>" * 1000 + "</p>",
    ],
)
def test_html_to_text_hostile_nesting_fast(html: str) -> None:
    with finishes_within(10):
        text = html_to_text(html)
    assert "a" in text or "x" in text


def test_html_to_text_many_tags_strips_tags() -> None:
    html = "<div>" * 20_000 + "a &amp; <b>b</b>" + "</div>" * 20_000
    with finishes_within(5):
        assert html_to_text(html) == "a & b\n"


def test_html_to_text_newsletter() -> None:
    html = """
    <html><head><style>.x { color: red }</style></head><body>
    <table width="600"><tr><td>
      <img src="https://shop.test/logo.png" alt="Atelier Nord">
      <h1>Spring news</h1>
      <p>Dear Ada,</p>
      <p>Our <b>spring</b> collection is in.
         Read the <a href="https://shop.test/blog/spring">full story</a>.</p>
      <h2>This week</h2>
      <ul><li>Linen shirts</li><li>Straw hats</li></ul>
      <table>
        <tr><th>Item</th><th>Price</th></tr>
        <tr><td>Linen shirt</td><td>€49</td></tr>
        <tr><td>Straw hat</td><td>€25</td></tr>
      </table>
      <p>See you soon,<br>Atelier Nord</p>
    </td></tr>
    <tr><td><p style="font-size: 11px">
      <a href="https://shop.test/unsubscribe?u=1&amp;t=2">Unsubscribe</a> |
      <a href="mailto:hello@shop.test">hello@shop.test</a>
    </p></td></tr></table>
    </body></html>
    """
    assert html_to_text(html) == (
        "Atelier Nord\n\n"
        "Spring news\n===========\n\n"
        "Dear Ada,\n\n"
        "Our spring collection is in. Read the full story (https://shop.test/blog/spring).\n\n"
        "This week\n---------\n\n"
        "- Linen shirts\n- Straw hats\n\n"
        "Item | Price\nLinen shirt | €49\nStraw hat | €25\n\n"
        "See you soon,\nAtelier Nord\n\n"
        "Unsubscribe (https://shop.test/unsubscribe?u=1&t=2) | hello@shop.test\n"
    )


def test_html_to_text_corpus_notification() -> None:
    message = email.message_from_bytes(
        (CORPUS / "chatwoot" / "notification.eml").read_bytes(), policy=email.policy.default
    )
    html_part = message.get_body(("html",))
    assert html_part is not None
    text = html_to_text(html_part.get_content())
    assert text.startswith("Hi Sojan,\n\n")
    assert (
        "Click here (https://chatwoot.herokuapp.com/app/conversations/873) to get cracking." in text
    )
    assert "Follow @chatwootapp (http://twitter.com/chatwootapp) on Twitter." in text
    assert "@media" not in text
    assert "max-width" not in text
    assert "\n\n\n" not in text


def test_sanitize_then_text_of_corpus_notification() -> None:
    message = email.message_from_bytes(
        (CORPUS / "chatwoot" / "notification.eml").read_bytes(), policy=email.policy.default
    )
    html_part = message.get_body(("html",))
    assert html_part is not None
    original = html_part.get_content()
    cleaned = sanitize_html(original, keep_template_tags=False)
    assert "@media only screen and (max-width: 640px)" in cleaned
    assert html_to_text(cleaned) == html_to_text(original)


# --- sample_data ----------------------------------------------------------------------


def test_sample_data_uses_samples_and_defaults() -> None:
    variables = [
        spec("name", sample="Ada"),
        spec("nickname", required=False),
        spec("tags", "list"),
        spec("total", "number"),
        spec("count", "integer"),
        spec("vip", "boolean"),
        spec("day", "date"),
        spec("at", "datetime"),
        spec("link", "url"),
        spec("customer", "object", sample={"name": "Ada"}),
        spec("extra", "object"),
    ]
    data = sample_data(variables)
    assert data["name"] == "Ada"
    assert data["nickname"] == "[nickname]"
    assert data["tags"] == ["[tags 1]", "[tags 2]"]
    assert data["customer"] == {"name": "Ada"}
    assert data["extra"] == {}
    assert check_data(variables, data) == []


def test_sample_data_renders_preview() -> None:
    variables = [spec("name"), spec("items", "list"), spec("day", "date"), spec("link", "url")]
    source = html_source(
        "<p>{{ name }} {{ day.isoformat() }}</p>{% for i in items %}<p>{{ i }}</p>{% endfor %}"
        '<a href="{{ link }}">x</a>',
        subject="For {{ name }}",
    )
    rendered = render_template(source, variables, sample_data(variables))
    assert rendered.subject == "For [name]"
    assert "[items 2]" in rendered.html
    assert 'href="https://example.com/"' in rendered.html
