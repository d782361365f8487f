"""The invoice PDF: its text as pypdf extracts it, page layout, scripts, logo and URL policy."""

from __future__ import annotations

import copy
import io
import socket
import struct
import subprocess
import sys
import threading
import zlib
from typing import Any

import pypdf
import pytest

from conftest import skip_or_fail
from frontdesk.payments import pdf
from frontdesk.payments.pdf import PdfUnavailable, format_amount, render_invoice

HEADER = "Description Quantity Unit price Tax Amount"


def invoice_view(**changes: Any) -> dict[str, Any]:
    view: dict[str, Any] = {
        "number": "INV-2026-0042",
        "status": "open",
        "currency": "EUR",
        "issue_date": "2026-12-01",
        "due_date": "2026-12-15",
        "seller": {"name": "Studio Nine", "address": "1 Harbour Road\nPiraeus", "tax_id": "EL123"},
        "customer": {"name": "Ada Lovelace", "email": "ada@example.com"},
        "lines": [
            {
                "description": "Logo design",
                "quantity": "2.500000",
                "unit_price": 12000,
                "tax_rate": "24.0000",
                "net_amount": 30000,
            },
            {
                "description": "Business cards",
                "quantity": "1",
                "unit_price": 4550,
                "tax_rate": "6",
                "net_amount": 4550,
            },
        ],
        "subtotal": 34550,
        "discount_total": 0,
        "tax_breakdown": [
            {"rate": "6", "base": 4550, "tax": 273},
            {"rate": "24", "base": 30000, "tax": 7200},
        ],
        "tax_total": 7473,
        "total": 42023,
        "amount_paid": 2023,
        "amount_credited": 0,
        "notes": "Thank you for your business.",
        "payment_terms": "Payable within 14 days.",
    }
    view.update(changes)
    return view


def pages_text(data: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def test_pdf_shows_numbers_and_totals() -> None:
    data = render_invoice(
        invoice_view(),
        logo=None,
        color="#0a7d4f",
        bank_details="IBAN GR16 0110 1250 0000 0001 2300 695\nBIC ETHNGRAA",
        payment_url="https://pay.example/pay/tok123",
    )
    assert data.startswith(b"%PDF-")
    text = "\n".join(pages_text(data))

    assert "INV-2026-0042" in text
    assert "2026-12-15" in text
    assert "Studio Nine" in text
    assert "Ada Lovelace" in text
    assert "Logo design" in text
    assert "2.5" in text
    assert "120.00 EUR" in text
    assert "345.50 EUR" in text
    assert "Tax 6 % on 45.50 EUR" in text
    assert "2.73 EUR" in text
    assert "Tax 24 % on 300.00 EUR" in text
    assert "72.00 EUR" in text
    assert "420.23 EUR" in text
    assert "Amount due 400.00 EUR" in text
    assert "Thank you for your business." in text
    assert "Payable within 14 days." in text
    assert "IBAN GR16 0110 1250 0000 0001 2300 695" in text
    assert "https://pay.example/pay/tok123" in text
    assert "Page 1 of 1" in text


@pytest.mark.parametrize(
    ("minor", "currency", "expected"),
    [
        (123456, "EUR", "1,234.56 EUR"),
        (5, "EUR", "0.05 EUR"),
        (-250, "EUR", "-2.50 EUR"),
        (1500, "JPY", "1,500 JPY"),
        (1234567, "BHD", "1,234.567 BHD"),
        (10000, "CLF", "1.0000 CLF"),
    ],
)
def test_amounts_use_currency_exponent(minor: int, currency: str, expected: str) -> None:
    assert format_amount(minor, currency) == expected


def test_yen_invoice_has_no_decimals() -> None:
    view = invoice_view(
        currency="JPY",
        lines=[{"description": "Tea", "quantity": "3", "unit_price": 800, "tax_rate": "10"}],
        subtotal=2400,
        tax_breakdown=[{"rate": "10", "base": 2400, "tax": 240}],
        tax_total=240,
        total=2640,
        amount_paid=0,
    )
    view["lines"][0]["net_amount"] = 2400
    text = "\n".join(pages_text(render_invoice(view, logo=None, color=None)))

    assert "2,640 JPY" in text
    assert "Amount due 2,640 JPY" in text
    assert "2,640.00" not in text


def test_many_lines_repeat_header_on_each_page() -> None:
    lines = [
        {
            "description": f"Session {number:03d}",
            "quantity": "1",
            "unit_price": 1000,
            "tax_rate": "0",
            "net_amount": 1000,
        }
        for number in range(200)
    ]
    view = invoice_view(
        lines=lines,
        subtotal=200000,
        tax_breakdown=[{"rate": "0", "base": 200000, "tax": 0}],
        tax_total=0,
        total=200000,
        amount_paid=0,
    )
    pages = pages_text(render_invoice(view, logo=None, color=None))

    assert len(pages) > 2
    pages_with_lines = [text for text in pages if "Session " in text]
    assert len(pages_with_lines) > 2
    for index, text in enumerate(pages_with_lines):
        assert HEADER in text, f"page {index + 1} has lines but no table header"
    for index, text in enumerate(pages):
        assert f"Page {index + 1} of {len(pages)}" in text
    everything = "\n".join(pages)
    for number in range(200):
        assert f"Session {number:03d}" in everything
    # A row kept whole sits on one page: no description is cut from its amount.
    for text in pages_with_lines:
        sessions = [line for line in text.splitlines() if line.startswith("Session ")]
        assert all(line.endswith("10.00 EUR") for line in sessions), sessions
    assert "Amount due 2,000.00 EUR" in everything


@pytest.mark.parametrize(
    "name",
    [
        "Αλέξανδρος Παπαδόπουλος",  # Greek
        "Анна Каренина",  # Cyrillic
        "مرحبا",  # Arabic
    ],
)
def test_non_latin_text_is_extractable(name: str) -> None:
    view = invoice_view(customer={"name": name})
    view["lines"][0]["description"] = f"Design for {name}"
    text = "\n".join(pages_text(render_invoice(view, logo=None, color=None)))

    # Once in the customer block and once in the line's description.
    assert text.count(name) >= 2


def _has_cjk_font() -> bool:
    try:
        listed = subprocess.run(
            ["fc-list", ":lang=ja", "family"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return False
    return "Noto Sans CJK" in listed


def test_japanese_text_is_extractable() -> None:
    if not _has_cjk_font():
        skip_or_fail("cjk-fonts", "no Noto Sans CJK font; install the fonts-noto-cjk package")
    view = invoice_view(customer={"name": "山田太郎", "address": "東京都千代田区"})
    view["lines"][0]["description"] = "ウェブサイト制作"
    text = "\n".join(pages_text(render_invoice(view, logo=None, color=None)))

    assert "山田太郎" in text
    assert "東京都千代田区" in text
    assert "ウェブサイト制作" in text


def test_markup_in_fields_is_escaped() -> None:
    view = invoice_view(notes="<b>bold</b> & <script>alert(1)</script>")
    view["customer"] = {"name": "</td></tr></table><h1>Injected</h1>"}
    html = pdf.render_html(view)

    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in html
    assert "<h1>Injected</h1>" not in html
    text = "\n".join(pages_text(render_invoice(view, logo=None, color=None)))
    assert "<b>bold</b> & <script>alert(1)</script>" in text


def test_color_must_be_hex() -> None:
    assert "--brand: #0a7d4f;" in pdf.render_html(invoice_view(), color="#0a7d4f")
    html = pdf.render_html(invoice_view(), color="red; } body { display: none")
    assert "display: none" not in html
    assert f"--brand: {pdf.DEFAULT_COLOR};" in html


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + b"\xcc\x22\x22" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _image_count(data: bytes) -> int:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return sum(len(page.images) for page in reader.pages)


def test_png_logo_is_embedded() -> None:
    with_logo = render_invoice(invoice_view(), logo=_png(40, 20), color=None)
    without = render_invoice(invoice_view(), logo=None, color=None)

    assert _image_count(with_logo) == 1
    assert _image_count(without) == 0


def test_unknown_logo_type_is_left_out() -> None:
    data = render_invoice(invoice_view(), logo=b"GIF89a\x01\x00\x01\x00", color=None)
    assert _image_count(data) == 0
    assert "INV-2026-0042" in "\n".join(pages_text(data))


class _ConnectionCounter:
    """A loopback TCP server that counts connections and serves a tiny PNG over HTTP."""

    def __init__(self) -> None:
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.server.accept()
            except TimeoutError:
                continue
            self.connections += 1
            with connection:
                body = _png(2, 2)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )

    def __enter__(self) -> _ConnectionCounter:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.server.close()


def test_renderer_fetches_no_url() -> None:
    with _ConnectionCounter() as server:
        url = f"http://127.0.0.1:{server.port}/tracker.png"
        svg = (
            '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
            f'width="40" height="20"><image href="{url}" xlink:href="{url}" width="40" '
            'height="20"/><rect width="10" height="10" fill="#0a7d4f"/></svg>'
        ).encode()
        view = invoice_view(notes=f"See {url}")
        view["lines"][0]["description"] = f'<img src="{url}">'
        data = render_invoice(view, logo=svg, color=None, payment_url=url)

    assert data.startswith(b"%PDF-")
    assert server.connections == 0


def test_missing_weasyprint_is_pdf_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes ``import weasyprint`` raise ImportError, as on a
    # server without the package.
    monkeypatch.setitem(sys.modules, "weasyprint", None)
    with pytest.raises(PdfUnavailable) as raised:
        render_invoice(invoice_view(), logo=None, color=None)

    assert raised.value.status == 503
    assert raised.value.code == "pdf_unavailable"


def test_view_is_not_changed() -> None:
    view = invoice_view()
    before = copy.deepcopy(view)
    render_invoice(view, logo=None, color=None)
    assert view == before


def test_parties_and_line_discount_shown() -> None:
    view = invoice_view()
    view["customer"] = {"name": "Ada Lovelace", "company": "Analytical Ltd", "tax_id": "GB999"}
    view["lines"][0]["gross_amount"] = 32000
    view["lines"][1]["gross_amount"] = 4550
    text = "\n".join(pages_text(render_invoice(view, logo=None, color=None)))

    assert "Tax ID: EL123" in text
    assert "Tax ID: GB999" in text
    assert "Analytical Ltd" in text
    assert "Discount \u221220.00 EUR" in text
    assert text.count("Discount \u2212") == 1


def test_rendering_keeps_pillow_strict() -> None:
    """WeasyPrint's import makes Pillow accept truncated images; rendering turns that off."""
    from PIL import ImageFile

    from frontdesk.payments.pdf import _load_weasyprint

    _load_weasyprint()

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
