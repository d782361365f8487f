"""The public payment page of an issued invoice, reached through its secret token.

The page shows only what the invoice itself shows: the seller's name, the number, dates,
lines, totals, the amount due and the bank details printed on it. Drafts are not found.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any

import sqlalchemy as sa
import structlog
from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from frontdesk.core.api import ClientIpDep, UowDep
from frontdesk.core.errors import Conflict, NotFound, Problem
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork
from frontdesk.payments import delivery, invoices, pdf
from frontdesk.payments.delivery_routes import pdf_response
from frontdesk.payments.models import Invoice, StripeAccount
from frontdesk.payments.settings import load_settings

log = structlog.get_logger()

router = APIRouter(prefix="/pay", tags=["payment page"])

_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": Problem, "description": "No issued invoice has this token."},
    429: {"model": Problem, "description": "Too many requests from this IP address."},
}

TokenPath = Annotated[str, Path(min_length=1, max_length=64)]

# The page loads nothing from elsewhere, and the token in its address is kept out of
# Referer headers and search engines.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

CheckoutFunction = Callable[[UnitOfWork, Invoice], Awaitable[str]]


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(pdf.TEMPLATES / "public"),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def checkout_function() -> CheckoutFunction | None:
    """Return the Stripe checkout creator when the Stripe integration is installed."""
    try:
        module = importlib.import_module("frontdesk.payments.stripe.checkout")
    except ImportError:
        return None
    function: CheckoutFunction | None = getattr(module, "create_checkout_for_invoice", None)
    return function


async def _check_rate(uow: UnitOfWork, ip: str) -> None:
    limit = Limit("payment_page_ip", uow.settings.payment_page_requests_per_ip_per_minute, 60)
    await uow.rt.limiter.check((limit, ip))


async def load_public_invoice(uow: UnitOfWork, token: str) -> Invoice:
    """Load an issued invoice by its public token; unknown tokens and drafts are not found."""
    invoice = await uow.session.scalar(sa.select(Invoice).where(Invoice.public_token == token))
    if invoice is None or invoice.status == "draft":
        raise NotFound("No invoice has this payment link; check the address in your email.")
    return invoice


def can_pay(invoice: Invoice) -> bool:
    return (
        invoice.status in ("open", "partially_paid", "overdue") and invoices.amount_due(invoice) > 0
    )


async def stripe_configured(uow: UnitOfWork, invoice: Invoice) -> bool:
    account_id = await uow.session.scalar(
        sa.select(StripeAccount.workspace_id).where(
            StripeAccount.workspace_id == invoice.workspace_id
        )
    )
    return account_id is not None


def _page_context(
    invoice: Invoice, view: dict[str, Any], *, bank_details: str, color: str | None
) -> dict[str, Any]:
    currency = invoice.currency
    return {
        "invoice": view,
        "token": invoice.public_token,
        "business_name": view["seller"].get("name") or "Your supplier",
        "customer_name": view["customer"].get("name"),
        "status_label": pdf.STATUS_LABELS.get(invoice.status, invoice.status),
        "amount_due": pdf.format_amount(view["amount_due"], currency),
        "subtotal": pdf.format_amount(view["subtotal"], currency),
        "discount_total": (
            pdf.format_amount(view["discount_total"], currency) if view["discount_total"] else ""
        ),
        "total": pdf.format_amount(view["total"], currency),
        "lines": [
            {
                "description": line["description"],
                "amount": pdf.format_amount(line["net_amount"], currency),
            }
            for line in view["lines"]
        ],
        "taxes": [
            {
                "rate": pdf.format_decimal(tax["rate"]),
                "amount": pdf.format_amount(int(tax["tax"]), currency),
            }
            for tax in view["tax_breakdown"]
        ],
        "bank_details": bank_details,
        "color": color if color and pdf.COLOR.fullmatch(color) else pdf.DEFAULT_COLOR,
    }


@router.get("/{token}", response_class=HTMLResponse, responses=_ERRORS)
async def payment_page(
    uow: UowDep,
    ip: ClientIpDep,
    token: TokenPath,
    checkout: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    """Show the invoice's summary, the amount due and the ways to pay it."""
    await _check_rate(uow, ip)
    invoice = await load_public_invoice(uow, token)
    settings = await load_settings(uow, invoice.workspace_id)
    brand, bank_details = delivery.branding(invoice, settings)
    view = await delivery.document_view(uow, invoice)
    payable = can_pay(invoice)
    context = _page_context(invoice, view, bank_details=bank_details, color=brand.get("color"))
    context["show_bank"] = payable
    context["show_card"] = (
        payable and checkout_function() is not None and await stripe_configured(uow, invoice)
    )
    context["checkout"] = checkout if checkout in ("success", "canceled") else None
    html = _environment().get_template("pay.html").render(**context)
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get(
    "/{token}/pdf",
    response_class=Response,
    responses={**_ERRORS, 200: {"content": {"application/pdf": {}}}},
)
async def payment_page_pdf(uow: UowDep, ip: ClientIpDep, token: TokenPath) -> Response:
    """Download the invoice's PDF."""
    await _check_rate(uow, ip)
    invoice = await load_public_invoice(uow, token)
    data, filename = await delivery.read_pdf(uow, invoice)
    response = pdf_response(data, filename, disposition="inline")
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.post(
    "/{token}/checkout",
    status_code=303,
    response_class=RedirectResponse,
    responses={**_ERRORS, 409: {"model": Problem, "description": "Nothing to pay by card."}},
)
async def payment_page_checkout(uow: UowDep, ip: ClientIpDep, token: TokenPath) -> Response:
    """Start a card payment: redirect to a Stripe Checkout page for the amount due."""
    await _check_rate(uow, ip)
    invoice = await load_public_invoice(uow, token)
    if not can_pay(invoice):
        raise Conflict(
            f"The invoice is {pdf.STATUS_LABELS.get(invoice.status, invoice.status).lower()}, "
            "so there is nothing to pay.",
            code="invoice_not_payable",
        )
    create_checkout = checkout_function()
    if create_checkout is None or not await stripe_configured(uow, invoice):
        raise Conflict(
            "This business does not take card payments online; pay by bank transfer instead.",
            code="card_payments_unavailable",
        )
    url = await create_checkout(uow, invoice)
    log.info("payments.checkout_started", invoice_id=str(invoice.id))
    return RedirectResponse(url, status_code=303, headers={"Referrer-Policy": "no-referrer"})
