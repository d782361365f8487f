"""A local fake of the Stripe API for tests, served by uvicorn on 127.0.0.1.

It checks requests the way Stripe does: a ``Bearer`` secret key that it issued (401 with
Stripe's error JSON otherwise), a ``Stripe-Version`` header, form-encoded POST bodies (a JSON
body is a 400), and an ``Idempotency-Key`` on every POST. A repeated key with the same
parameters replays the first response with the same object; a repeated key with other
parameters is a 400 ``idempotency_error``. A DELETE carries its parameters in the query
string and no body. Stripe ignores an idempotency key on GET and DELETE, so the fake only
records one there. Objects start from Stripe's own examples in
tests/fixtures/stripe/fixtures3.json, with ids, amounts and metadata from the request.

Billing (customers, products, prices, tax rates, subscriptions) follows API version
2025-03-31.basil: a subscription's ``current_period_start`` and ``current_period_end`` sit
on its items, and an invoice names its subscription under ``parent.subscription_details``.
Unknown ids are a 404 ``resource_missing``, missing required parameters a 400
``parameter_missing`` and unknown parameters a 400 ``parameter_unknown``, as in Stripe.

The fake also builds events and signs them like Stripe for webhook tests.
"""

from __future__ import annotations

import asyncio
import calendar
import copy
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import factories
from frontdesk.core.uow import unit_of_work
from frontdesk.payments.models import Invoice, Payment
from frontdesk.payments.stripe.webhooks import signature_header
from frontdesk.runtime import Runtime
from live_server import HOST, listening_socket

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
EXAMPLES: dict[str, dict[str, Any]] = json.loads((FIXTURES / "fixtures3.json").read_text())[
    "resources"
]
_INDEX = re.compile(r"\[([^\]]*)\]")


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Rebuild nested params from Stripe's bracketed form keys (``a[b][0][c]=v``)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_INDEX.findall(key)]
        node: Any = root
        for position, part in enumerate(parts):
            last = position == len(parts) - 1
            if isinstance(node, list):
                index = int(part)
                while len(node) <= index:
                    node.append(None)
                if last:
                    node[index] = value
                else:
                    if node[index] is None:
                        node[index] = [] if parts[position + 1].isdigit() else {}
                    node = node[index]
            else:
                if last:
                    node[part] = value
                else:
                    if part not in node:
                        node[part] = [] if parts[position + 1].isdigit() else {}
                    node = node[part]
    return root


def stripe_error(status: int, message: str, error_type: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": error_type, **extra}},
        status_code=status,
        headers={"request-id": "req_" + secrets.token_hex(7)},
    )


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


# --- Stripe's request errors --------------------------------------------------------------

Answer = tuple[int, dict[str, Any]]


class Rejected(Exception):
    """A request that Stripe rejects, with the status and error JSON it returns."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None, param: str | None = None
    ):
        super().__init__(message)
        error: dict[str, Any] = {"message": message, "type": "invalid_request_error"}
        if code is not None:
            error["code"] = code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param is not None:
            error["param"] = param
        self.answer: Answer = (status, {"error": error})


def no_such(kind: str, object_id: object, param: str, *, status: int = 400) -> Rejected:
    """Stripe's error for an unknown id: 404 for the object in the URL, 400 for a parameter."""
    return Rejected(status, f"No such {kind}: '{object_id}'", code="resource_missing", param=param)


def require(params: dict[str, Any], *names: str, within: str | None = None) -> None:
    """Raise Stripe's ``parameter_missing`` for the first name without a value.

    ``within`` names the parent of nested params, so ``recurring`` reports
    ``recurring[interval]``.
    """
    for name in names:
        if params.get(name) in (None, "", [], {}):
            param = f"{within}[{name}]" if within else name
            raise Rejected(
                400, f"Missing required param: {param}.", code="parameter_missing", param=param
            )


def check_known(params: dict[str, Any], known: frozenset[str]) -> None:
    """Reject top-level parameters that the endpoint, or this fake of it, does not take."""
    for name in params:
        if name not in known:
            raise Rejected(
                400, f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )


def boolean(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise Rejected(400, f"Invalid boolean: {value}", param=param)
    return bool(value == "true")


def integer(value: Any, param: str, *, minimum: int = 0, maximum: int | None = None) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise Rejected(400, f"Invalid integer: {value}", param=param) from None
    if number < minimum:
        raise Rejected(400, f"This value must be greater than or equal to {minimum}.", param=param)
    if maximum is not None and number > maximum:
        raise Rejected(400, f"This value must be less than or equal to {maximum}.", param=param)
    return number


def choice(value: Any, param: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        listed = ", ".join(choices[:-1]) + f", or {choices[-1]}"
        raise Rejected(400, f"Invalid {param}: must be one of {listed}", param=param)
    return str(value)


def metadata_of(value: Any, current: dict[str, str] | None = None) -> dict[str, str]:
    """Apply ``metadata`` params: an empty value removes a key, ``metadata=""`` removes all."""
    result = dict(current or {})
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise Rejected(400, "Invalid object", param="metadata")
    for key, entry in value.items():
        if entry == "":
            result.pop(key, None)
        else:
            result[key] = str(entry)
    return result


def add_interval(start: int, interval: str, count: int) -> int:
    """Return ``start`` moved on by ``count`` intervals, keeping the day of the month if it exists."""
    if interval == "day":
        return start + count * 86_400
    if interval == "week":
        return start + count * 7 * 86_400
    moment = datetime.fromtimestamp(start, tz=UTC)
    months = moment.month - 1 + count * (12 if interval == "year" else 1)
    year, month = moment.year + months // 12, months % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())


def created_matches(created: int, condition: Any) -> bool:
    """Apply a list's ``created`` filter: a timestamp, or ``gt``/``gte``/``lt``/``lte``."""
    if not isinstance(condition, dict):
        return created == integer(condition, "created")
    tests = {
        "gt": lambda bound: created > bound,
        "gte": lambda bound: created >= bound,
        "lt": lambda bound: created < bound,
        "lte": lambda bound: created <= bound,
    }
    for name, bound in condition.items():
        if name not in tests:
            raise Rejected(
                400, f"Received unknown parameter: created[{name}]", code="parameter_unknown"
            )
        if not tests[name](integer(bound, f"created[{name}]")):
            return False
    return True


class Clock(Protocol):
    def now(self) -> datetime: ...


# --- What the Billing endpoints take ------------------------------------------------------
#
# Parameters that Stripe takes but this fake does not implement (``expand`` among them) are
# left out, so a request that relies on one fails here instead of passing untested.

CUSTOMER_PARAMS = frozenset(
    {"email", "name", "phone", "description", "metadata", "invoice_settings"}
)
PRODUCT_PARAMS = frozenset({"name", "active", "description", "metadata"})
PRICE_PARAMS = frozenset(
    {
        "currency",
        "product",
        "product_data",
        "unit_amount",
        "recurring",
        "metadata",
        "nickname",
        "lookup_key",
    }
)
TAX_RATE_PARAMS = frozenset(
    {
        "display_name",
        "percentage",
        "inclusive",
        "active",
        "country",
        "description",
        "jurisdiction",
        "state",
        "tax_type",
        "metadata",
    }
)
SUBSCRIPTION_CREATE_PARAMS = frozenset(
    {
        "customer",
        "items",
        "default_tax_rates",
        "trial_period_days",
        "trial_end",
        "metadata",
        "payment_behavior",
        "proration_behavior",
        "collection_method",
        "days_until_due",
        "default_payment_method",
        "description",
        "cancel_at_period_end",
    }
)
SUBSCRIPTION_UPDATE_PARAMS = frozenset(
    {
        "items",
        "proration_behavior",
        "cancel_at_period_end",
        "pause_collection",
        "metadata",
        "default_tax_rates",
        "payment_behavior",
        "description",
        "default_payment_method",
        "cancellation_details",
    }
)
PRORATION_BEHAVIORS = ("create_prorations", "none", "always_invoice")
SUBSCRIPTION_STATUSES = (
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
)
SUBSCRIPTION_EVENTS = (
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
)

Filter = Callable[[dict[str, Any], Any], bool]


def equals(name: str) -> Filter:
    return lambda obj, value: str(obj.get(name)) == str(value)


def flag(name: str) -> Filter:
    return lambda obj, value: obj.get(name) == boolean(value, name)


def subscription_status(obj: dict[str, Any], value: Any) -> bool:
    if value == "all":
        return True
    if value == "ended":
        return obj["status"] in ("canceled", "incomplete_expired")
    return obj["status"] == choice(value, "status", (*SUBSCRIPTION_STATUSES, "all", "ended"))


def has_price(obj: dict[str, Any], value: Any) -> bool:
    return any(item["price"]["id"] == value for item in obj["items"]["data"])


def invoice_subscription(obj: dict[str, Any], value: Any) -> bool:
    details = (obj.get("parent") or {}).get("subscription_details") or {}
    return bool(details.get("subscription") == value)


# Collection path: (id prefix, name in errors, list filters beyond limit, cursor and created).
LISTS: dict[str, tuple[str, str, dict[str, Filter]]] = {
    "/v1/customers": ("cus_", "customer", {"email": equals("email")}),
    "/v1/products": ("prod_", "product", {"active": flag("active")}),
    "/v1/prices": (
        "price_",
        "price",
        {"active": flag("active"), "product": equals("product"), "type": equals("type")},
    ),
    "/v1/tax_rates": (
        "txr_",
        "tax rate",
        {"active": flag("active"), "inclusive": flag("inclusive")},
    ),
    "/v1/subscriptions": (
        "sub_",
        "subscription",
        {"status": subscription_status, "customer": equals("customer"), "price": has_price},
    ),
    "/v1/invoices": (
        "in_",
        "invoice",
        {
            "customer": equals("customer"),
            "status": equals("status"),
            "subscription": invoice_subscription,
        },
    ),
    "/v1/payment_intents": ("pi_", "payment_intent", {"customer": equals("customer")}),
    "/v1/refunds": (
        "re_",
        "refund",
        {"payment_intent": equals("payment_intent"), "charge": equals("charge")},
    ),
    "/v1/checkout/sessions": (
        "cs_",
        "checkout.session",
        {"payment_intent": equals("payment_intent")},
    ),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]
    replayed: bool = False


@dataclass
class FakeStripe:
    """The fake's state: known keys, objects by id, recorded requests and injected failures."""

    secret_keys: set[str] = field(default_factory=set)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    # Idempotency-Key -> (method and path, params, status, body)
    idempotency: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = field(
        default_factory=dict
    )
    # Responses for the next requests to a path: (status, error JSON, Stripe-Should-Retry).
    failures: dict[str, list[tuple[int, dict[str, Any], str | None]]] = field(default_factory=dict)
    # Proration items that subscription updates created, as Stripe adds them to the next invoice.
    prorations: list[dict[str, Any]] = field(default_factory=list)
    # The clock of new objects and periods, which is the wall clock unless a test sets one.
    clock: Clock | None = None
    url: str = ""

    def now(self) -> int:
        return int((self.clock.now() if self.clock else datetime.now(UTC)).timestamp())

    def new_secret_key(self) -> str:
        key = "sk_test_" + secrets.token_urlsafe(24)
        self.secret_keys.add(key)
        return key

    def fail_next(
        self, path: str, status: int, error: dict[str, Any], *, should_retry: str | None = None
    ) -> None:
        self.failures.setdefault(path, []).append((status, error, should_retry))

    def created(self, prefix: str) -> list[dict[str, Any]]:
        return [obj for key, obj in self.objects.items() if key.startswith(prefix + "_")]

    def posts(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == path]

    def sent(self, method: str, path: str) -> list[RecordedRequest]:
        """Return the recorded requests of one method to one path, replays included."""
        return [r for r in self.requests if r.method == method and r.path == path]

    # --- Objects --------------------------------------------------------------------------

    def _base(self, resource: str, prefix: str) -> dict[str, Any]:
        obj = copy.deepcopy(EXAMPLES[resource])
        obj["id"] = new_id(prefix)
        obj["created"] = self.now()
        obj["livemode"] = False
        if "metadata" in obj:
            obj["metadata"] = {}
        return obj

    def create_checkout_session(self, params: dict[str, Any]) -> dict[str, Any]:
        session = self._base("checkout.session", "cs_test")
        items = params.get("line_items") or []
        total = sum(
            int(item["price_data"]["unit_amount"]) * int(item.get("quantity", 1)) for item in items
        )
        currency = items[0]["price_data"]["currency"] if items else None
        session.update(
            mode=params.get("mode"),
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            client_reference_id=params.get("client_reference_id"),
            customer_email=params.get("customer_email"),
            metadata=params.get("metadata") or {},
            amount_total=total,
            amount_subtotal=total,
            currency=currency,
            status="open",
            payment_status="unpaid",
            payment_intent=None,
            url=f"https://checkout.stripe.test/c/pay/{secrets.token_hex(8)}",
        )
        self.objects[session["id"]] = session
        return session

    def create_payment_intent(self, params: dict[str, Any]) -> dict[str, Any]:
        intent = self._base("payment_intent", "pi")
        intent.update(
            amount=int(params["amount"]),
            currency=params["currency"],
            metadata=params.get("metadata") or {},
            customer=params.get("customer"),
            status="requires_payment_method",
            canceled_at=None,
            last_payment_error=None,
            latest_charge=None,
            amount_received=0,
        )
        intent["client_secret"] = f"{intent['id']}_secret_{secrets.token_hex(8)}"
        self.objects[intent["id"]] = intent
        return intent

    def succeed_payment_intent(self, intent: dict[str, Any]) -> dict[str, Any]:
        """Mark an intent paid and give it a charge, as a completed card payment does."""
        charge = self._base("charge", "ch")
        charge.update(
            amount=intent["amount"],
            amount_captured=intent["amount"],
            amount_refunded=0,
            currency=intent["currency"],
            payment_intent=intent["id"],
            captured=True,
            paid=True,
            status="succeeded",
            refunded=False,
            refunds={"object": "list", "data": [], "has_more": False, "url": "/v1/refunds"},
        )
        self.objects[charge["id"]] = charge
        intent.update(status="succeeded", latest_charge=charge["id"])
        intent["amount_received"] = intent["amount"]
        return charge

    def create_refund(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.objects.get(str(params.get("payment_intent")))
        if intent is None:
            return 400, {
                "message": f"No such payment_intent: '{params.get('payment_intent')}'",
                "type": "invalid_request_error",
                "code": "resource_missing",
                "param": "payment_intent",
            }
        charge = self.objects.get(str(intent.get("latest_charge")))
        if charge is None:
            return 400, {
                "message": "This PaymentIntent does not have a successful charge to refund.",
                "type": "invalid_request_error",
                "code": "charge_not_refundable",
            }
        amount = int(params.get("amount") or charge["amount"] - charge["amount_refunded"])
        if amount > charge["amount"] - charge["amount_refunded"]:
            return 400, {
                "message": f"Refund amount ({amount}) is greater than unrefunded amount.",
                "type": "invalid_request_error",
                "code": "amount_too_large",
                "param": "amount",
            }
        refund = self._base("refund", "re")
        refund.update(
            amount=amount,
            charge=charge["id"],
            payment_intent=intent["id"],
            currency=charge["currency"],
            metadata=params.get("metadata") or {},
            reason=params.get("reason"),
            status="succeeded",
        )
        self.objects[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        charge["refunds"]["data"].insert(0, refund)
        return 200, refund

    # --- Billing --------------------------------------------------------------------------

    def _stored(self, kind: str, prefix: str, object_id: Any, param: str) -> dict[str, Any]:
        """Return a stored object named by a parameter, or raise Stripe's 400 for that param."""
        obj = self.objects.get(str(object_id)) if str(object_id).startswith(prefix) else None
        if obj is None:
            raise no_such(kind, object_id, param)
        return obj

    def create_customer(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, CUSTOMER_PARAMS)
        customer = self._base("customer", "cus")
        settings = params.get("invoice_settings") or {}
        customer.update(
            email=params.get("email"),
            name=params.get("name"),
            phone=params.get("phone"),
            description=params.get("description"),
            metadata=metadata_of(params.get("metadata", {})),
            currency=None,
            discount=None,
        )
        customer["invoice_settings"]["default_payment_method"] = settings.get(
            "default_payment_method"
        )
        self.objects[customer["id"]] = customer
        return customer

    def create_product(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, PRODUCT_PARAMS)
        require(params, "name")
        product = self._base("product", "prod")
        product.update(
            name=params["name"],
            active=boolean(params.get("active", "true"), "active"),
            description=params.get("description"),
            metadata=metadata_of(params.get("metadata", {})),
            default_price=None,
            images=[],
            package_dimensions=None,
            shippable=None,
            type="service",
            updated=product["created"],
        )
        self.objects[product["id"]] = product
        return product

    def create_price(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, PRICE_PARAMS)
        require(params, "currency")
        if "product_data" in params:
            require(params["product_data"], "name", within="product_data")
            product_id = self.create_product({"name": params["product_data"]["name"]})["id"]
        else:
            require(params, "product")
            product_id = self._stored("product", "prod_", params["product"], "product")["id"]

        require(params, "unit_amount")
        unit_amount = integer(params["unit_amount"], "unit_amount")
        currency = str(params["currency"])
        if not re.fullmatch(r"[a-zA-Z]{3}", currency):
            raise Rejected(400, f"Invalid currency: {currency}", param="currency")

        recurring = params.get("recurring")
        if recurring is not None:
            require(recurring, "interval", within="recurring")
            recurring = {
                "interval": choice(
                    recurring["interval"], "recurring[interval]", ("day", "week", "month", "year")
                ),
                "interval_count": integer(
                    recurring.get("interval_count", "1"), "recurring[interval_count]", minimum=1
                ),
                "meter": None,
                "trial_period_days": None,
                "usage_type": "licensed",
            }

        price = self._base("price", "price")
        price.update(
            product=product_id,
            currency=currency.lower(),
            unit_amount=unit_amount,
            unit_amount_decimal=str(unit_amount),
            recurring=recurring,
            type="recurring" if recurring else "one_time",
            metadata=metadata_of(params.get("metadata", {})),
            nickname=params.get("nickname"),
            lookup_key=params.get("lookup_key"),
            custom_unit_amount=None,
            transform_quantity=None,
        )
        self.objects[price["id"]] = price
        return price

    def create_tax_rate(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, TAX_RATE_PARAMS)
        require(params, "display_name", "percentage", "inclusive")
        try:
            percentage = Decimal(str(params["percentage"]))
        except InvalidOperation:
            message = f"Invalid decimal: {params['percentage']}"
            raise Rejected(400, message, param="percentage") from None
        if not 0 <= percentage <= 100:
            raise Rejected(400, "The percentage must be between 0 and 100.", param="percentage")
        tax_rate = self._base("tax_rate", "txr")
        tax_rate.update(
            display_name=params["display_name"],
            # Stripe returns the percentage as a JSON number: 20 for "20", 7.5 for "7.50".
            percentage=int(percentage)
            if percentage == percentage.to_integral()
            else float(percentage),
            inclusive=boolean(params["inclusive"], "inclusive"),
            active=boolean(params.get("active", "true"), "active"),
            country=params.get("country"),
            description=params.get("description"),
            jurisdiction=params.get("jurisdiction"),
            state=params.get("state"),
            tax_type=params.get("tax_type"),
            metadata=metadata_of(params.get("metadata", {})),
            effective_percentage=None,
            flat_amount=None,
            jurisdiction_level=None,
            rate_type="percentage",
        )
        self.objects[tax_rate["id"]] = tax_rate
        return tax_rate

    def _tax_rates(self, value: Any, param: str) -> list[dict[str, Any]]:
        if value in ("", None):
            return []
        rates = []
        for index, tax_rate_id in enumerate(value):
            rate = self._stored("tax rate", "txr_", tax_rate_id, f"{param}[{index}]")
            if not rate["active"]:
                raise Rejected(
                    400, f"Tax rate {tax_rate_id} is archived.", param=f"{param}[{index}]"
                )
            rates.append(copy.deepcopy(rate))
        return rates

    def _item_price(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        param = f"items[{index}][price]"
        if not params.get("price"):
            raise Rejected(
                400, f"Missing required param: {param}.", code="parameter_missing", param=param
            )
        price = self._stored("price", "price_", params["price"], param)
        if price["type"] != "recurring":
            raise Rejected(
                400,
                "The price specified is set to `type=one_time` but this field only accepts "
                "prices with `type=recurring`.",
                param=param,
            )
        return price

    def _item(
        self, subscription: dict[str, Any], params: dict[str, Any], index: int, start: int, end: int
    ) -> dict[str, Any]:
        param = f"items[{index}]"
        price = self._item_price(params, index)
        item = copy.deepcopy(EXAMPLES["subscription_item"])
        item.update(
            id=new_id("si"),
            created=self.now(),
            subscription=subscription["id"],
            quantity=integer(params.get("quantity", "1"), f"{param}[quantity]", minimum=1),
            metadata=metadata_of(params.get("metadata", {})),
            tax_rates=self._tax_rates(params.get("tax_rates"), f"{param}[tax_rates]"),
            discounts=[],
            billing_thresholds=None,
            current_period_start=start,
            current_period_end=end,
        )
        self._set_price(item, price)
        return item

    @staticmethod
    def _set_price(item: dict[str, Any], price: dict[str, Any]) -> None:
        recurring = price["recurring"]
        item["price"] = copy.deepcopy(price)
        # The legacy plan object mirrors the price on every subscription item.
        item["plan"] = {
            "id": price["id"],
            "object": "plan",
            "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": "per_unit",
            "created": price["created"],
            "currency": price["currency"],
            "interval": recurring["interval"],
            "interval_count": recurring["interval_count"],
            "livemode": False,
            "metadata": price["metadata"],
            "meter": None,
            "nickname": price["nickname"],
            "product": price["product"],
            "tiers_mode": None,
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        }

    def create_subscription(self, params: dict[str, Any]) -> dict[str, Any]:
        check_known(params, SUBSCRIPTION_CREATE_PARAMS)
        require(params, "customer", "items")
        customer = self._stored("customer", "cus_", params["customer"], "customer")
        now = self.now()
        payment_behavior = choice(
            params.get("payment_behavior", "allow_incomplete"),
            "payment_behavior",
            ("allow_incomplete", "default_incomplete", "error_if_incomplete"),
        )
        if "proration_behavior" in params:
            choice(params["proration_behavior"], "proration_behavior", PRORATION_BEHAVIORS)
        collection = choice(
            params.get("collection_method", "charge_automatically"),
            "collection_method",
            ("charge_automatically", "send_invoice"),
        )
        days_until_due = None
        if collection == "send_invoice":
            require(params, "days_until_due")
            days_until_due = integer(params["days_until_due"], "days_until_due")
        trial_end = self._trial_end(params, now)

        subscription = self._base("subscription", "sub")
        subscription["metadata"] = metadata_of(params.get("metadata", {}))
        items = params["items"]
        if not isinstance(items, list):
            raise Rejected(400, "Invalid array", param="items")
        recurring = self._item_price(items[0], 0)["recurring"]
        end = trial_end or add_interval(now, recurring["interval"], recurring["interval_count"])
        data = [self._item(subscription, item, index, now, end) for index, item in enumerate(items)]
        payment_method = params.get("default_payment_method") or (
            customer["invoice_settings"].get("default_payment_method")
        )
        subscription.update(
            customer=customer["id"],
            currency=data[0]["price"]["currency"],
            items={
                "object": "list",
                "data": data,
                "has_more": False,
                "total_count": len(data),
                "url": f"/v1/subscription_items?subscription={subscription['id']}",
            },
            default_tax_rates=self._tax_rates(params.get("default_tax_rates"), "default_tax_rates"),
            collection_method=collection,
            days_until_due=days_until_due,
            default_payment_method=params.get("default_payment_method"),
            default_source=None,
            description=params.get("description"),
            start_date=now,
            billing_cycle_anchor=end if trial_end else now,
            billing_cycle_anchor_config=None,
            trial_start=now if trial_end else None,
            trial_end=trial_end,
            cancel_at_period_end=False,
            cancel_at=None,
            canceled_at=None,
            ended_at=None,
            cancellation_details={"comment": None, "feedback": None, "reason": None},
            pause_collection=None,
            discounts=[],
            pending_update=None,
            pending_setup_intent=None,
            pending_invoice_item_interval=None,
            next_pending_invoice_item_invoice=None,
            billing_schedules=[],
            billing_thresholds=None,
            transfer_data=None,
            schedule=None,
            latest_invoice=None,
        )
        if "cancel_at_period_end" in params and boolean(
            params["cancel_at_period_end"], "cancel_at_period_end"
        ):
            subscription.update(cancel_at_period_end=True, cancel_at=end)

        # The first invoice decides the status, as in Stripe: a trial's invoice is 0 and paid,
        # a sent invoice waits for the customer, and a charge needs a payment method.
        amount = self._amount_due(subscription)
        if trial_end or amount == 0:
            status, invoice_status = ("trialing" if trial_end else "active"), "paid"
        elif collection == "send_invoice":
            status, invoice_status = "active", "open"
        elif payment_behavior == "default_incomplete" or not payment_method:
            if payment_behavior == "error_if_incomplete":
                raise Rejected(
                    400,
                    "This customer has no attached payment source or default payment method.",
                    code="resource_missing",
                )
            status, invoice_status = "incomplete", "open"
        else:
            status, invoice_status = "active", "paid"
        subscription["status"] = status
        self.objects[subscription["id"]] = subscription
        self.create_invoice(
            subscription,
            status=invoice_status,
            billing_reason="subscription_create",
            amount=0 if trial_end else None,
        )
        return subscription

    def _trial_end(self, params: dict[str, Any], now: int) -> int | None:
        if "trial_period_days" in params and "trial_end" in params:
            raise Rejected(
                400,
                "You may only specify one of these parameters: trial_end, trial_period_days.",
                param="trial_end",
            )
        if "trial_period_days" in params:
            days = integer(params["trial_period_days"], "trial_period_days", maximum=730)
            return now + days * 86_400 if days else None
        if "trial_end" in params:
            if params["trial_end"] == "now":
                return None
            end = integer(params["trial_end"], "trial_end")
            if end <= now:
                raise Rejected(
                    400,
                    "Invalid timestamp: must be an integer Unix timestamp in the future.",
                    param="trial_end",
                )
            return end
        return None

    def _amount_due(self, subscription: dict[str, Any]) -> int:
        """Return the items' total with exclusive tax rates added, in the smallest unit."""
        total = 0
        for item in subscription["items"]["data"]:
            amount = int(item["price"]["unit_amount"]) * int(item["quantity"])
            rates = item["tax_rates"] or subscription["default_tax_rates"]
            tax = sum(
                Decimal(str(rate["percentage"])) * amount / 100
                for rate in rates
                if not rate["inclusive"]
            )
            total += amount + int(Decimal(tax).quantize(Decimal(1)))
        return total

    def create_invoice(
        self,
        subscription: dict[str, Any],
        *,
        status: str,
        billing_reason: str,
        amount: int | None = None,
    ) -> dict[str, Any]:
        """Store an invoice of the subscription's current period and make it the latest.

        ``amount`` defaults to the items' total with tax; a trial's first invoice is 0.
        """
        invoice = self._base("invoice", "in")
        if amount is None:
            amount = self._amount_due(subscription)
        first = subscription["items"]["data"][0]
        paid = status == "paid"

        line = copy.deepcopy(EXAMPLES["invoice"]["lines"]["data"][0])
        line.update(
            id=new_id("il"),
            invoice=invoice["id"],
            amount=amount,
            currency=subscription["currency"],
            description=None,
            period={"start": first["current_period_start"], "end": first["current_period_end"]},
            quantity=first["quantity"],
            subtotal=amount,
            parent={
                "type": "subscription_item_details",
                "invoice_item_details": None,
                "subscription_item_details": {
                    "invoice_item": None,
                    "proration": False,
                    "proration_details": {"credited_items": None},
                    "subscription": subscription["id"],
                    "subscription_item": first["id"],
                },
            },
        )

        invoice.update(
            customer=subscription["customer"],
            currency=subscription["currency"],
            collection_method=subscription["collection_method"],
            billing_reason=billing_reason,
            status=status,
            amount_due=amount,
            amount_paid=amount if paid else 0,
            amount_remaining=0 if paid else amount,
            subtotal=amount,
            total=amount,
            attempted=paid,
            attempt_count=1 if paid else 0,
            period_start=first["current_period_start"],
            period_end=first["current_period_end"],
            lines={
                "object": "list",
                "data": [line],
                "has_more": False,
                "url": f"/v1/invoices/{invoice['id']}/lines",
            },
            parent={
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {
                    "metadata": copy.deepcopy(subscription["metadata"]),
                    "subscription": subscription["id"],
                },
            },
            status_transitions={
                "finalized_at": invoice["created"],
                "marked_uncollectible_at": None,
                "paid_at": invoice["created"] if paid else None,
                "voided_at": None,
            },
            from_invoice=None,
            last_finalization_error=None,
        )
        # API version 2025-03-31.basil moved invoice.subscription to parent.subscription_details.
        invoice.pop("subscription", None)
        self.objects[invoice["id"]] = invoice
        subscription["latest_invoice"] = invoice["id"]
        return invoice

    def _subscription(self, subscription_id: str) -> dict[str, Any]:
        obj = self.objects.get(subscription_id) if subscription_id.startswith("sub_") else None
        if obj is None:
            raise no_such("subscription", subscription_id, "id", status=404)
        return obj

    def update_subscription(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        subscription = self._subscription(subscription_id)
        if subscription["status"] == "canceled":
            if set(params) - {"metadata", "cancellation_details"}:
                raise Rejected(
                    400,
                    "A canceled subscription can only update its cancellation_details "
                    "and metadata.",
                )
        check_known(params, SUBSCRIPTION_UPDATE_PARAMS)
        proration = choice(
            params.get("proration_behavior", "create_prorations"),
            "proration_behavior",
            PRORATION_BEHAVIORS,
        )
        if "payment_behavior" in params:
            choice(
                params["payment_behavior"],
                "payment_behavior",
                (
                    "allow_incomplete",
                    "default_incomplete",
                    "error_if_incomplete",
                    "pending_if_incomplete",
                ),
            )

        if "items" in params:
            self._update_items(subscription, params["items"], proration)

        if "cancel_at_period_end" in params:
            at_end = boolean(params["cancel_at_period_end"], "cancel_at_period_end")
            period_end = subscription["items"]["data"][0]["current_period_end"]
            subscription.update(
                cancel_at_period_end=at_end, cancel_at=period_end if at_end else None
            )

        if "pause_collection" in params:
            subscription["pause_collection"] = self._pause_collection(params["pause_collection"])

        if "metadata" in params:
            subscription["metadata"] = metadata_of(params["metadata"], subscription["metadata"])

        if "default_tax_rates" in params:
            subscription["default_tax_rates"] = self._tax_rates(
                params["default_tax_rates"], "default_tax_rates"
            )

        if "description" in params:
            subscription["description"] = params["description"] or None

        if "default_payment_method" in params:
            subscription["default_payment_method"] = params["default_payment_method"] or None

        if "cancellation_details" in params:
            details = params["cancellation_details"] or {}
            subscription["cancellation_details"].update(
                comment=details.get("comment"), feedback=details.get("feedback")
            )
        return subscription

    def _update_items(self, subscription: dict[str, Any], changes: Any, proration: str) -> None:
        if not isinstance(changes, list):
            raise Rejected(400, "Invalid array", param="items")
        items = subscription["items"]["data"]
        start = items[0]["current_period_start"]
        end = items[0]["current_period_end"]
        for index, change in enumerate(changes):
            param = f"items[{index}]"
            if "id" not in change:
                items.append(self._item(subscription, change, index, start, end))
                continue
            item = next((i for i in items if i["id"] == change["id"]), None)
            if item is None:
                raise no_such("subscription item", change["id"], f"{param}[id]")
            if change.get("deleted") == "true":
                items.remove(item)
                continue
            if "price" in change:
                price = self._stored("price", "price_", change["price"], f"{param}[price]")
                if price["id"] != item["price"]["id"] and proration != "none":
                    self.prorations.append(
                        {
                            "subscription": subscription["id"],
                            "subscription_item": item["id"],
                            "from_price": item["price"]["id"],
                            "to_price": price["id"],
                        }
                    )
                self._set_price(item, price)
            if "quantity" in change:
                item["quantity"] = integer(change["quantity"], f"{param}[quantity]", minimum=1)
        if not items:
            raise Rejected(400, "A subscription must keep at least one item.", param="items")
        subscription["items"]["total_count"] = len(items)
        if proration == "always_invoice":
            self.create_invoice(subscription, status="open", billing_reason="subscription_update")

    @staticmethod
    def _pause_collection(value: Any) -> dict[str, Any] | None:
        # An empty value unsets pause_collection and so resumes collection.
        if value == "":
            return None
        if not isinstance(value, dict):
            raise Rejected(400, "Invalid object", param="pause_collection")
        if not value.get("behavior"):
            raise Rejected(
                400,
                "Missing required param: pause_collection[behavior].",
                code="parameter_missing",
                param="pause_collection[behavior]",
            )
        behavior = choice(
            value["behavior"],
            "pause_collection[behavior]",
            ("keep_as_draft", "mark_uncollectible", "void"),
        )
        resumes_at = value.get("resumes_at")
        return {
            "behavior": behavior,
            "resumes_at": None if resumes_at is None else integer(resumes_at, "resumes_at"),
        }

    def cancel_subscription(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Cancel at once, as DELETE does. A second DELETE of the subscription is then a 404."""
        check_known(params, frozenset({"invoice_now", "prorate", "cancellation_details"}))
        subscription = self._subscription(subscription_id)
        if subscription["status"] == "canceled":
            raise no_such("subscription", subscription_id, "id", status=404)
        now = self.now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        subscription["cancellation_details"]["reason"] = "cancellation_requested"
        return subscription

    def route_billing(self, method: str, path: str, params: dict[str, Any]) -> Answer | None:
        """Serve the Billing endpoints, or return None for a path outside them."""
        creators = {
            "/v1/customers": self.create_customer,
            "/v1/products": self.create_product,
            "/v1/prices": self.create_price,
            "/v1/tax_rates": self.create_tax_rate,
            "/v1/subscriptions": self.create_subscription,
        }
        if method == "POST" and path in creators:
            return 200, creators[path](params)
        if path.startswith("/v1/subscriptions/"):
            subscription_id = path.removeprefix("/v1/subscriptions/")
            if method == "POST":
                return 200, self.update_subscription(subscription_id, params)
            if method == "DELETE":
                return 200, self.cancel_subscription(subscription_id, params)
        return None

    def list_objects(self, path: str, params: dict[str, Any]) -> Answer:
        """List one collection newest first, filtered and paginated like Stripe's lists."""
        prefix, kind, filters = LISTS[path]
        check_known(params, frozenset({"limit", "starting_after", "created", *filters}))
        data = [obj for key, obj in self.objects.items() if key.startswith(prefix)]
        if "created" in params:
            data = [obj for obj in data if created_matches(obj["created"], params["created"])]
        for name, value in params.items():
            if name in filters:
                data = [obj for obj in data if filters[name](obj, value)]
        if path == "/v1/subscriptions" and "status" not in params:
            # Stripe leaves canceled subscriptions out unless the request filters on status.
            data = [obj for obj in data if obj["status"] != "canceled"]
        data.sort(key=lambda obj: obj["created"], reverse=True)
        limit = integer(params.get("limit", "10"), "limit", minimum=1, maximum=100)
        start = 0
        if "starting_after" in params:
            ids = [obj["id"] for obj in data]
            if params["starting_after"] not in ids:
                raise no_such(kind, params["starting_after"], "starting_after")
            start = ids.index(params["starting_after"]) + 1
        return 200, {
            "object": "list",
            "url": path,
            "has_more": start + limit < len(data),
            "data": data[start : start + limit],
        }

    def retrieve(self, path: str) -> Answer | None:
        """Return the object at ``/v1/<collection>/<id>``, 404 for an unknown id."""
        for collection, (prefix, kind, _filters) in LISTS.items():
            if path.startswith(collection + "/"):
                object_id = path.removeprefix(collection + "/")
                if "/" in object_id:
                    return None
                obj = self.objects.get(object_id) if object_id.startswith(prefix) else None
                if obj is None:
                    raise no_such(kind, object_id, "id", status=404)
                return 200, obj
        return None

    # --- Events ---------------------------------------------------------------------------

    def subscription_event(
        self,
        event_type: str,
        subscription_id: str,
        *,
        previous_attributes: dict[str, Any] | None = None,
        created: int | None = None,
    ) -> dict[str, Any]:
        """Build a customer.subscription.* event of the subscription as the fake stores it now."""
        if event_type not in SUBSCRIPTION_EVENTS:
            raise ValueError(f"{event_type} is not one of {', '.join(SUBSCRIPTION_EVENTS)}")
        event = self.event(event_type, self._subscription(subscription_id), created=created)
        if previous_attributes is not None:
            event["data"]["previous_attributes"] = previous_attributes
        return event

    def invoice_event(
        self,
        event_type: str,
        subscription_id: str,
        *,
        billing_reason: str = "subscription_cycle",
        created: int | None = None,
    ) -> dict[str, Any]:
        """Invoice the subscription and build ``invoice.paid`` or ``invoice.payment_failed``.

        The subscription's status follows the invoice as in Stripe: a failed renewal makes it
        ``past_due``, and a paid invoice makes a past due or incomplete subscription active.
        """
        subscription = self._subscription(subscription_id)
        if event_type == "invoice.paid":
            invoice = self.create_invoice(
                subscription, status="paid", billing_reason=billing_reason
            )
            if subscription["status"] in ("past_due", "unpaid", "incomplete"):
                subscription["status"] = "active"
        elif event_type == "invoice.payment_failed":
            invoice = self.create_invoice(
                subscription, status="open", billing_reason=billing_reason
            )
            invoice.update(attempted=True, attempt_count=1)
            if billing_reason != "subscription_create" and subscription["status"] in (
                "active",
                "trialing",
            ):
                subscription["status"] = "past_due"
        else:
            raise ValueError(f"{event_type} is not invoice.paid or invoice.payment_failed")
        return self.event(event_type, invoice, created=created)

    def event(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        created: int | None = None,
        api_version: str | None = "2025-03-31.basil",
    ) -> dict[str, Any]:
        event = copy.deepcopy(EXAMPLES["event"])
        event.update(
            id=new_id("evt"),
            type=event_type,
            created=created if created is not None else self.now(),
            api_version=api_version,
            data={"object": copy.deepcopy(obj)},
            livemode=False,
        )
        return event


def signed(
    event: dict[str, Any], secret_list: list[str], *, timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Return an event's body and headers signed like Stripe signs a delivery."""
    body = json.dumps(event, separators=(",", ":")).encode()
    when = int(time.time()) if timestamp is None else timestamp
    return body, {
        "Stripe-Signature": signature_header(body, secret_list, when),
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }


def build_app(fake: FakeStripe) -> Starlette:
    async def handle(request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        key = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        if key not in fake.secret_keys:
            shown = f"{key[:8]}{'*' * 12}{key[-4:]}" if key else ""
            return stripe_error(401, f"Invalid API Key provided: {shown}", "invalid_request_error")
        if not request.headers.get("stripe-version"):
            return stripe_error(
                400, "A Stripe-Version header is required in these tests.", "invalid_request_error"
            )
        path = request.url.path
        method = request.method
        if method == "POST":
            content_type = request.headers.get("content-type", "")
            if not content_type.startswith("application/x-www-form-urlencoded"):
                return stripe_error(
                    400,
                    "Invalid request: the body must be form-encoded "
                    "(application/x-www-form-urlencoded), not JSON.",
                    "invalid_request_error",
                )
            body = (await request.body()).decode()
            params = parse_form(parse_qsl(body, keep_blank_values=True))
            idempotency_key = request.headers.get("idempotency-key")
            if not idempotency_key:
                return stripe_error(
                    400,
                    "Every POST in these tests needs an Idempotency-Key.",
                    "invalid_request_error",
                )
            known = fake.idempotency.get(idempotency_key)
            if known is not None:
                first_target, first_params, status, answer = known
                if first_target != f"{method} {path}" or first_params != params:
                    return stripe_error(
                        400,
                        "Keys for idempotent requests can only be used with the same "
                        "parameters they were first used with.",
                        "idempotency_error",
                    )
                fake.requests.append(RecordedRequest(method, path, idempotency_key, params, True))
                return JSONResponse(
                    answer, status_code=status, headers={"Idempotent-Replayed": "true"}
                )
        else:
            if method == "DELETE" and await request.body():
                return stripe_error(
                    400,
                    "A DELETE request takes its parameters in the query string, not in a body.",
                    "invalid_request_error",
                )
            params = parse_form(list(request.query_params.multi_items()))
            # Stripe ignores the key on GET and DELETE, and the fake records it so tests can check it.
            idempotency_key = request.headers.get("idempotency-key")
        fake.requests.append(RecordedRequest(method, path, idempotency_key, params))
        queued = fake.failures.get(path)
        if queued:
            status, error, should_retry = queued.pop(0)
            response = JSONResponse({"error": error}, status_code=status)
            if should_retry is not None:
                response.headers["Stripe-Should-Retry"] = should_retry
            return response
        status, answer = route(method, path, params)
        if method == "POST" and idempotency_key and status < 500:
            # Stripe replays the saved response, not the object as it is now.
            saved = copy.deepcopy(answer)
            fake.idempotency[idempotency_key] = (f"{method} {path}", params, status, saved)
        return JSONResponse(answer, status_code=status)

    def route(method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if method == "GET" and path == "/v1/account":
            account = copy.deepcopy(EXAMPLES["account"])
            return 200, account
        if method == "GET" and path == "/v1/balance":
            return 200, copy.deepcopy(EXAMPLES["balance"])
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, fake.create_checkout_session(params)
        if method == "POST" and path == "/v1/payment_intents":
            return 200, fake.create_payment_intent(params)
        if method == "POST" and path == "/v1/refunds":
            status, answer = fake.create_refund(params)
            return status, answer if status == 200 else {"error": answer}
        try:
            billing = fake.route_billing(method, path, params)
            if billing is not None:
                return billing
            if method == "GET" and path in LISTS:
                return fake.list_objects(path, params)
            if method == "GET":
                found = fake.retrieve(path)
                if found is not None:
                    return found
        except Rejected as rejected:
            return rejected.answer
        return 404, {
            "error": {
                "message": f"Unrecognized request URL ({method}: {path}).",
                "type": "invalid_request_error",
            }
        }

    return Starlette(routes=[Route("/v1/{rest:path}", handle, methods=["GET", "POST", "DELETE"])])


@asynccontextmanager
async def serve_fake_stripe() -> AsyncIterator[FakeStripe]:
    """Serve a fresh fake on a free port of 127.0.0.1 in this event loop."""
    fake = FakeStripe()
    sock = listening_socket()
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(build_app(fake), lifespan="off", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.01)
        fake.url = f"http://{HOST}:{port}"
        yield fake
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


# --- Test data in the application -------------------------------------------------------------


@dataclass(frozen=True)
class StripeWorkspace:
    """A workspace whose admin stored the fake's keys through PUT /api/v1/payments/stripe."""

    workspace_id: uuid.UUID
    headers: dict[str, str]
    secret_key: str
    webhook_secret: str
    webhook_path: str


async def connect_workspace(client: httpx.AsyncClient, fake: FakeStripe) -> StripeWorkspace:
    staff = await factories.owner(client)
    secret_key = fake.new_secret_key()
    webhook_secret = "whsec_" + secrets.token_urlsafe(24)
    response = await client.put(
        "/api/v1/payments/stripe",
        headers=staff.headers,
        json={"secret_key": secret_key, "webhook_secret": webhook_secret},
    )
    assert response.status_code == 200, response.text
    url = response.json()["webhook_url"]
    return StripeWorkspace(
        workspace_id=staff.workspace_id,
        headers=staff.headers,
        secret_key=secret_key,
        webhook_secret=webhook_secret,
        webhook_path="/" + url.split("/", 3)[3],
    )


async def issued_invoice(
    runtime: Runtime, workspace_id: uuid.UUID, *, total: int = 12_000, currency: str = "EUR"
) -> Invoice:
    """Insert an open invoice of ``total`` minor units, as issuing leaves it."""
    now = runtime.clock.now()
    async with unit_of_work(runtime) as uow:
        invoice = Invoice(
            workspace_id=workspace_id,
            number=f"INV-{secrets.token_hex(3)}",
            status="open",
            currency=currency,
            issue_date=now.date(),
            due_date=now.date(),
            subtotal=total,
            total=total,
            public_token=secrets.token_urlsafe(24),
            customer={"name": "Ada Customer", "email": "ada@example.org"},
            created_at=now,
            updated_at=now,
            issued_at=now,
        )
        uow.session.add(invoice)
    return invoice


async def stripe_payment(
    runtime: Runtime,
    invoice: Invoice,
    *,
    intent_id: str,
    status: str = "pending",
    amount: int | None = None,
) -> Payment:
    """Insert the payment that a Checkout Session or PaymentIntent of ``invoice`` started."""
    now = runtime.clock.now()
    async with unit_of_work(runtime) as uow:
        payment = Payment(
            workspace_id=invoice.workspace_id,
            invoice_id=invoice.id,
            gateway="stripe",
            method="card",
            status=status,
            currency=invoice.currency,
            amount=invoice.total if amount is None else amount,
            amount_refunded=0,
            stripe_payment_intent_id=intent_id,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(payment)
    return payment
