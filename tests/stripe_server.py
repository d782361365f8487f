"""A local fake of the Stripe API for tests, served by uvicorn on 127.0.0.1.

It checks requests the way Stripe does: a ``Bearer`` secret key that it issued (401 with
Stripe's error JSON otherwise), a ``Stripe-Version`` header, form-encoded POST bodies (a JSON
body is a 400), and an ``Idempotency-Key`` on every POST. A repeated key with the same
parameters replays the first response with the same object; a repeated key with other
parameters is a 400 ``idempotency_error``. Objects start from Stripe's own examples in
tests/fixtures/stripe/fixtures3.json, with ids, amounts and metadata from the request.

The fake also builds events and signs them like Stripe for webhook tests.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
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
    url: str = ""

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

    # --- Objects --------------------------------------------------------------------------

    def _base(self, resource: str, prefix: str) -> dict[str, Any]:
        obj = copy.deepcopy(EXAMPLES[resource])
        obj["id"] = new_id(prefix)
        obj["created"] = int(time.time())
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

    # --- Events ---------------------------------------------------------------------------

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
            created=created if created is not None else int(time.time()),
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
            params = parse_form(list(request.query_params.multi_items()))
            idempotency_key = None
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
            fake.idempotency[idempotency_key] = (f"{method} {path}", params, status, answer)
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
        for prefix, listing in (
            ("/v1/payment_intents", "pi_"),
            ("/v1/refunds", "re_"),
            ("/v1/subscriptions", "sub_"),
            ("/v1/checkout/sessions", "cs_"),
        ):
            if method == "GET" and path == prefix:
                data = [o for k, o in fake.objects.items() if k.startswith(listing)]
                data.sort(key=lambda o: o["created"], reverse=True)
                limit = int(params.get("limit", 10))
                start = 0
                if "starting_after" in params:
                    ids = [o["id"] for o in data]
                    start = ids.index(params["starting_after"]) + 1
                page = data[start : start + limit]
                return 200, {
                    "object": "list",
                    "url": prefix,
                    "has_more": start + limit < len(data),
                    "data": page,
                }
            if method == "GET" and path.startswith(prefix + "/"):
                obj = fake.objects.get(path.removeprefix(prefix + "/"))
                if obj is not None:
                    return 200, obj
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
