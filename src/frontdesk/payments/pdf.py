"""Render an invoice as an A4 PDF with WeasyPrint from an autoescaped Jinja2 template.

WeasyPrint needs Pango at run time, so it is imported only when a PDF is rendered and a
missing library becomes the 503 problem ``pdf_unavailable``. The renderer never fetches a
URL: the only resource a document may load is the logo, passed as a ``data:`` URI built here.
"""

from __future__ import annotations

import base64
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import ImageFile

from frontdesk.core.errors import ProblemError
from frontdesk.payments import money

log = structlog.get_logger()

TEMPLATES = Path(__file__).parent / "templates"
DEFAULT_COLOR = "#1f2937"
COLOR = re.compile(r"#[0-9a-fA-F]{6}")

STATUS_LABELS = {
    "draft": "Draft",
    "open": "Open",
    "partially_paid": "Partially paid",
    "paid": "Paid",
    "overdue": "Overdue",
    "void": "Void",
    "uncollectible": "Uncollectible",
}


class PdfUnavailable(ProblemError):
    """WeasyPrint or the system libraries it loads (Pango, HarfBuzz) are missing."""

    status = 503
    code = "pdf_unavailable"
    title = "PDF rendering unavailable"


# --- Formatting -----------------------------------------------------------------------------


def format_amount(minor: int, currency: str) -> str:
    """Format an amount in minor units with the currency's exponent: 123456 EUR -> "1,234.56 EUR"."""
    places = money.exponent(currency)
    sign = "-" if minor < 0 else ""
    units, fraction = divmod(abs(minor), 10**places)
    text = f"{units:,}"
    if places:
        text += f".{fraction:0{places}d}"
    return f"{sign}{text} {currency}"


def format_decimal(text: Any) -> str:
    """Show a decimal string without trailing zeros: "2.500000" -> "2.5"."""
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return str(text)
    if value == value.to_integral_value():
        return f"{value.to_integral_value():f}"
    return f"{value.normalize():f}"


def format_date(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)[:10]


def text_lines(value: Any) -> list[str]:
    """Split a snapshot field into display lines: a string by line breaks, a dict by its values."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [line for item in value.values() for line in text_lines(item)]
    if isinstance(value, list | tuple):
        return [line for item in value for line in text_lines(item)]
    return [line.strip() for line in str(value).splitlines() if line.strip()]


PARTY_FIELDS = ("name", "company", "address", "email", "phone", "website")
PARTY_LABELS = {"tax_id": "Tax ID", "company_number": "Company number"}


def party_lines(party: Any) -> list[str]:
    """Return the display lines of a seller or customer snapshot, labelling registration ids.

    Only the fields in PARTY_FIELDS and PARTY_LABELS are shown, so other snapshot entries
    (the seller's bank details and branding) stay out of the address blocks.
    """
    if not isinstance(party, dict):
        return text_lines(party)
    lines: list[str] = []
    for name in PARTY_FIELDS:
        lines.extend(text_lines(party.get(name)))
    for name, label in PARTY_LABELS.items():
        if party.get(name):
            lines.append(f"{label}: {party[name]}")
    return lines


# --- Logo -----------------------------------------------------------------------------------


def logo_media_type(data: bytes) -> str | None:
    """Return the logo's media type from its first bytes: PNG, JPEG or SVG, else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096].lower():
        return "image/svg+xml"
    return None


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


# --- Rendering ------------------------------------------------------------------------------


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["amount"] = format_amount
    environment.filters["decimal"] = format_decimal
    environment.filters["date"] = format_date
    environment.filters["lines"] = text_lines
    environment.filters["party"] = party_lines
    return environment


def render_html(
    invoice: dict[str, Any],
    *,
    logo_uri: str | None = None,
    color: str | None = None,
    bank_details: str = "",
    payment_url: str | None = None,
) -> str:
    """Render the invoice's HTML, which the PDF is printed from."""
    currency = str(invoice["currency"])
    total = int(invoice.get("total") or 0)
    amount_due = invoice.get("amount_due")
    if amount_due is None:
        amount_due = (
            total - int(invoice.get("amount_paid") or 0) - int(invoice.get("amount_credited") or 0)
        )
    template = _environment().get_template("invoice.html")
    return template.render(
        invoice=invoice,
        currency=currency,
        amount_due=max(int(amount_due), 0),
        status_label=STATUS_LABELS.get(str(invoice.get("status")), str(invoice.get("status"))),
        color=color if color and COLOR.fullmatch(color) else DEFAULT_COLOR,
        logo_uri=logo_uri,
        bank_details=text_lines(bank_details),
        payment_url=payment_url,
        stylesheet=(TEMPLATES / "invoice.css").read_text(encoding="utf-8"),
    )


def _load_weasyprint() -> Any:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        # OSError: WeasyPrint is installed but cffi cannot load Pango or one of its libraries.
        log.error("payments.pdf_unavailable", error=str(exc))
        raise PdfUnavailable(
            "Invoice PDFs cannot be rendered on this server because WeasyPrint or its system "
            "libraries (Pango) are missing; install them and try again."
        ) from exc
    # Importing WeasyPrint (70) sets Pillow's process-wide LOAD_TRUNCATED_IMAGES, which would
    # let storage previews decode damaged uploads. The only image in an invoice is the
    # workspace's logo, so the strict default is restored.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    return weasyprint


def _fetcher_class(weasyprint: Any) -> Any:
    base = weasyprint.urls.URLFetcher

    class OnlyOwnDataFetcher(base):  # type: ignore[misc, valid-type]
        """Serve the data: URIs this module built and reject every other URL."""

        def __init__(self, allowed: dict[str, tuple[bytes, str]]) -> None:
            super().__init__(allowed_protocols=["data"])
            self._allowed = allowed

        def fetch(self, url: str, headers: Any = None) -> Any:
            entry = self._allowed.get(url)
            if entry is None:
                raise ValueError("invoice PDFs load no URL other than their own logo")
            data, media_type = entry
            return weasyprint.urls.URLFetcherResponse(
                url, body=data, headers={"Content-Type": media_type}
            )

    return OnlyOwnDataFetcher


def render_invoice(
    invoice_view: dict[str, Any],
    *,
    logo: bytes | None,
    color: str | None,
    bank_details: str = "",
    payment_url: str | None = None,
) -> bytes:
    """Render the invoice as PDF bytes.

    ``logo`` is the workspace logo's content; anything but PNG, JPEG or SVG is left out.
    ``color`` is the brand colour as #rrggbb; any other value falls back to a dark grey.
    Raises PdfUnavailable when WeasyPrint cannot be loaded.
    """
    weasyprint = _load_weasyprint()
    allowed: dict[str, tuple[bytes, str]] = {}
    logo_uri = None
    if logo:
        media_type = logo_media_type(logo)
        if media_type is None:
            log.warning("payments.pdf_logo_skipped", reason="unsupported_type")
        else:
            logo_uri = _data_uri(logo, media_type)
            allowed[logo_uri] = (logo, media_type)
    html = render_html(
        invoice_view,
        logo_uri=logo_uri,
        color=color,
        bank_details=bank_details,
        payment_url=payment_url,
    )
    fetcher = _fetcher_class(weasyprint)(allowed)
    document = weasyprint.HTML(string=html, url_fetcher=fetcher)
    pdf: bytes = document.write_pdf()
    return pdf
