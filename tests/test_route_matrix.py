"""Route matrix: checks generated from the application's route table, so new endpoints join.

For every route the matrix checks authentication (401), the minimum role (403), another
workspace's ids (404), and the valid and invalid requests of tests/route_cases.py. Two
workspaces, A and B, with real resources are built once per database for the whole module.
Every request goes through ``send``, which fails the test on any 5xx response.
"""

from __future__ import annotations

import io
import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from PIL import Image
from starlette.routing import WebSocketRoute

from conftest import bearer, make_settings, run_jobs, truncate_all
from frontdesk.app import create_app
from frontdesk.auth.dependencies import (
    ROLE_RANK,
    current_actor,
    current_user,
    require_instance_admin,
)
from frontdesk.auth.models import User
from frontdesk.core.clock import FrozenClock
from frontdesk.core.models import Job
from frontdesk.core.uow import unit_of_work
from frontdesk.email.models import EmailMessage
from frontdesk.email.service import queue_email
from frontdesk.models import Base
from frontdesk.notifications.models import Notification
from frontdesk.runtime import Runtime
from frontdesk.workspaces.models import Membership
from route_cases import (
    ANSWERS,
    CASES,
    EXCLUDED,
    FORM_FIELDS,
    OMIT,
    ORIGIN,
    PASSWORD,
    Case,
    Ref,
)

# The tests share the module-scoped ``world``, so they run on its event loop.
module_loop = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"
# The roles one step below each minimum, for the 403 checks.
CALLER_BELOW = {"admin": "agent", "owner": "admin", "instance_admin": "owner"}
_TOKEN_IN_LINK = re.compile(r"\?token=([^\s&\"<>]+)")


# --- The route table ------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    access: str
    path_params: tuple[str, ...] = ()
    has_input: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _dependency_calls(dependant: Dependant) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub.call
        yield from _dependency_calls(sub)


def takes_input(dependant: Dependant) -> bool:
    """Whether a route reads path, query or body parameters (headers do not count)."""
    if dependant.path_params or dependant.query_params or dependant.body_params:
        return True
    return any(takes_input(sub) for sub in dependant.dependencies)


def path_param_names(dependant: Dependant) -> Iterator[str]:
    """Yield the path parameters of a route, including those read by its dependencies."""
    for param in dependant.path_params:
        yield param.name
    for sub in dependant.dependencies:
        yield from path_param_names(sub)


def classify(dependant: Dependant) -> str:
    """Return the access a route requires, read from the authentication dependencies it uses."""
    calls = list(_dependency_calls(dependant))
    if require_instance_admin in calls:
        return "instance_admin"
    roles = [call.min_role for call in calls if hasattr(call, "min_role")]
    if roles:
        return max(roles, key=ROLE_RANK.__getitem__)
    if current_actor in calls:
        return "agent"
    if current_user in calls:
        return "user"
    return "public"


def route_table(app: FastAPI) -> list[RouteInfo]:
    """List every route as (method, path template), HEAD left out.

    FastAPI 0.165 keeps an included router as one entry of ``app.routes``, and
    ``iter_route_contexts`` yields its routes with the prefix applied.
    """
    routes = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        path = str(context.path_format)
        methods = sorted((context.methods or set()) - {"HEAD"})
        if isinstance(original, APIRoute):
            has_input = takes_input(context.dependant)
            params = tuple(dict.fromkeys(path_param_names(context.dependant)))
            access = classify(context.dependant)
            routes += [RouteInfo(method, path, access, params, has_input) for method in methods]
        elif isinstance(original, (APIWebSocketRoute, WebSocketRoute)):
            routes.append(RouteInfo("WEBSOCKET", path, "public"))
        else:
            routes += [RouteInfo(method, path, "public") for method in methods]
    return routes


def _load_routes() -> list[RouteInfo]:
    # Nothing connects until the lifespan starts, so the directory is only a placeholder.
    with tempfile.TemporaryDirectory() as directory:
        settings = make_settings(f"sqlite+aiosqlite:///{directory}/unused.db", Path(directory))
        return route_table(create_app(settings, run_worker=False))


ROUTES = _load_routes()
API_ROUTES = [route for route in ROUTES if route.key in CASES]
AUTHENTICATED = [route for route in ROUTES if route.access != "public"]
BELOW_MINIMUM = [route for route in ROUTES if route.access in CALLER_BELOW]
# Routes whose ids belong to a workspace or a user. Instance admin routes are left out
# because instance admins may read every workspace.
SCOPED = [
    route for route in AUTHENTICATED if route.path_params and route.access != "instance_admin"
]
WITH_PARAMS = [route for route in API_ROUTES if route.path_params]
INVALID_CASES = [
    pytest.param(route, index, id=f"{route}#{index}")
    for route in API_ROUTES
    for index in range(len(CASES[route.key].invalid))
]
DENIED_CASES = [
    pytest.param(route, index, id=f"{route}#{index}")
    for route in API_ROUTES
    for index in range(len(CASES[route.key].denied))
]


# --- People, workspaces and resources -------------------------------------------------------


@dataclass(frozen=True)
class Person:
    user_id: str
    email: str
    headers: dict[str, str]


@dataclass
class Team:
    """A workspace and its members by role."""

    workspace_id: str
    members: dict[str, Person]

    @property
    def owner(self) -> Person:
        return self.members["owner"]


Resolver = Callable[["World", Team, "Person | None"], Awaitable[Any]]


@dataclass
class World:
    client: httpx.AsyncClient
    runtime: Runtime
    teams: dict[str, Team] = field(default_factory=dict)
    instance_admin: Person | None = None
    _cache: dict[tuple[str, str, str], Any] = field(default_factory=dict)

    @property
    def a(self) -> Team:
        return self.teams["a"]

    @property
    def b(self) -> Team:
        return self.teams["b"]

    async def post(self, path: str, headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """POST a setup request that must succeed and return its JSON body."""
        response = await self.client.post(path, headers=headers, **kwargs)
        assert response.status_code in (200, 201), f"setup POST {path}: {response.text}"
        return response.json()

    async def sign_up(self, workspace_name: str) -> Team:
        email = new_email("owner")
        tokens = await self.post(
            "/api/v1/auth/signup",
            json={
                "email": email,
                "password": PASSWORD,
                "full_name": "Test Owner",
                "workspace_name": workspace_name,
            },
        )
        owner = Person(tokens["user"]["id"], email, bearer(tokens))
        return Team(tokens["workspace"]["id"], {"owner": owner})

    async def set_user(self, person: Person, **values: Any) -> None:
        async with unit_of_work(self.runtime) as uow:
            await uow.session.execute(
                sa.update(User).where(User.id == uuid.UUID(person.user_id)).values(**values)
            )

    async def add_member(self, team: Team, role: str) -> Person:
        """Insert a verified user with a membership in the team's workspace and log them in."""
        email = new_email(role)
        workspace_id = uuid.UUID(team.workspace_id)
        async with unit_of_work(self.runtime) as uow:
            now = uow.now()
            user = User(
                email=email,
                password_hash=await self.runtime.hasher.hash(PASSWORD),
                full_name=f"Test {role.title()}",
                email_verified_at=now,
                last_workspace_id=workspace_id,
                created_at=now,
                updated_at=now,
            )
            uow.session.add(user)
            await uow.session.flush()
            uow.session.add(
                Membership(workspace_id=workspace_id, user_id=user.id, role=role, created_at=now)
            )
            user_id = str(user.id)
        tokens = await self.log_in(email)
        return Person(user_id, email, bearer(tokens))

    async def log_in(self, email: str) -> Any:
        return await self.post(
            "/api/v1/auth/token",
            json={"grant_type": "password", "email": email, "password": PASSWORD},
        )

    async def make_team(self, name: str) -> Team:
        team = await self.sign_up(name)
        await self.set_user(team.owner, email_verified_at=self.runtime.clock.now())
        team.members["admin"] = await self.add_member(team, "admin")
        team.members["agent"] = await self.add_member(team, "agent")
        return team

    async def token_sent_to(self, address: str, kind: str) -> str:
        """Return the token of the newest ``kind`` email to ``address``, after running jobs."""
        # Some emails are written by a job (the password reset, so that known and unknown
        # addresses get the same response), so due jobs run first.
        await run_jobs(self.runtime)
        async with self.runtime.sessionmaker() as session:
            messages = await session.scalars(
                sa.select(EmailMessage)
                .where(EmailMessage.to_address == address, EmailMessage.kind == kind)
                .order_by(EmailMessage.id)
            )
            message = messages.all()[-1]
        match = _TOKEN_IN_LINK.search(message.text_body)
        assert match, f"setup: no token link in the {kind} email"
        return unquote(match.group(1))

    async def caller(self, name: str) -> tuple[Team, Person | None]:
        """Return the workspace whose resources a request uses, and who sends it."""
        if name == "anonymous":
            return self.a, None
        if name == "new_owner":
            team = await self.sign_up("New Studio")
            return team, team.owner
        if name == "instance_admin":
            return self.a, self.instance_admin
        return self.a, self.a.members[name]

    async def value(self, name: str, team: Team, caller: Person | None, *, fresh: bool) -> Any:
        """Return the value for ``Ref(name)``, created now or, unless ``fresh``, reused."""
        resolver = RESOLVERS.get(name)
        assert resolver is not None, f"no resolver for Ref({name!r}); add one to RESOLVERS"
        if fresh or name in UNIQUE_VALUES:
            return await resolver(self, team, caller)
        key = (team.workspace_id, caller.user_id if caller else "", name)
        if key not in self._cache:
            self._cache[key] = await resolver(self, team, caller)
        return self._cache[key]

    async def resolve(self, value: Any, team: Team, caller: Person | None, *, fresh: bool) -> Any:
        if isinstance(value, Ref):
            return await self.value(value.name, team, caller, fresh=fresh)
        if isinstance(value, dict):
            return {k: await self.resolve(v, team, caller, fresh=fresh) for k, v in value.items()}
        if isinstance(value, list):
            return [await self.resolve(v, team, caller, fresh=fresh) for v in value]
        return value


def new_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def _form(world: World, team: Team, caller: Person | None) -> Any:
    return await world.post(
        "/api/v1/forms",
        team.owner.headers,
        json={"name": "Contact us", "fields": FORM_FIELDS, "allowed_origins": [ORIGIN]},
    )


async def _enquiry(world: World, team: Team, caller: Person | None) -> Any:
    return await world.post(
        "/api/v1/enquiries",
        team.owner.headers,
        json={"message": "Wedding photos?", "contact": {"name": "Camille", "email": new_email()}},
    )


async def _form_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _form(world, team, caller))["id"])


async def _public_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _form(world, team, caller))["public_id"])


async def _enquiry_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _enquiry(world, team, caller))["id"])


async def _contact_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _enquiry(world, team, caller))["contact"]["id"])


async def _user_id(world: World, team: Team, caller: Person | None) -> str:
    return (await world.add_member(team, "agent")).user_id


async def _invitation_id(world: World, team: Team, caller: Person | None) -> str:
    invitation = await world.post(
        "/api/v1/invitations", team.owner.headers, json={"email": new_email(), "role": "agent"}
    )
    return str(invitation["id"])


async def _owner_invitation_id(world: World, team: Team, caller: Person | None) -> str:
    invitation = await world.post(
        "/api/v1/invitations", team.owner.headers, json={"email": new_email(), "role": "owner"}
    )
    return str(invitation["id"])


async def _invitation_token(world: World, team: Team, caller: Person | None) -> str:
    """Invite the caller's address (a new one without a caller) to workspace A."""
    address = caller.email if caller else new_email("invited")
    await world.post(
        "/api/v1/invitations", world.a.owner.headers, json={"email": address, "role": "agent"}
    )
    return await world.token_sent_to(address, "invitation")


async def _notification_id(world: World, team: Team, caller: Person | None) -> str:
    """Submit the team's form, which notifies every member, and return the caller's new one."""
    person = caller or team.owner
    query = sa.select(Notification.id).where(
        Notification.user_id == uuid.UUID(person.user_id),
        Notification.workspace_id == uuid.UUID(team.workspace_id),
    )
    async with world.runtime.sessionmaker() as session:
        before = set(await session.scalars(query))
    public_id = await world.value("public_id", team, team.owner, fresh=False)
    await world.post(f"/f/{public_id}", json=ANSWERS)
    async with world.runtime.sessionmaker() as session:
        created = set(await session.scalars(query)) - before
    assert len(created) == 1, f"setup: expected one new notification, got {len(created)}"
    return str(created.pop())


async def _email_id(world: World, team: Team, caller: Person | None) -> str:
    async with unit_of_work(world.runtime) as uow:
        message = await queue_email(
            uow,
            kind="enquiry_acknowledgement",
            to=new_email("customer"),
            subject="We received your enquiry",
            text="Thank you.",
            html="<p>Thank you.</p>",
            workspace_id=uuid.UUID(team.workspace_id),
        )
        return str(message.id)


async def _job_id(world: World, team: Team, caller: Person | None) -> str:
    """Queue an email of the team's workspace and mark its send job dead, as a 5xx reply does."""
    email_id = await _email_id(world, team, caller)
    async with unit_of_work(world.runtime) as uow:
        job = await uow.session.scalar(
            sa.select(Job).where(Job.payload["email_id"].as_string() == email_id)
        )
        assert job is not None, "setup: queue_email wrote no send job"
        job.status = "dead"
        job.attempts = job.max_attempts
        job.last_error = "550 mailbox unavailable"
        job.finished_at = uow.now()
        return str(job.id)


async def _session_id(world: World, team: Team, caller: Person | None) -> str:
    """Log the caller (the team's owner without one) in again and return the new session id."""
    person = caller or team.owner
    tokens = await world.log_in(person.email)
    response = await world.client.get("/api/v1/auth/sessions", headers=bearer(tokens))
    assert response.status_code == 200, f"setup: {response.text}"
    return next(str(item["id"]) for item in response.json() if item["current"])


async def _admin_notification_id(world: World, team: Team, caller: Person | None) -> str:
    return await _notification_id(world, team, team.members["admin"])


async def _admin_session_id(world: World, team: Team, caller: Person | None) -> str:
    return await _session_id(world, team, team.members["admin"])


async def _tag(world: World, team: Team, caller: Person | None) -> str:
    return "vip"


async def _new_email(world: World, team: Team, caller: Person | None) -> str:
    return new_email("new")


async def _owner_email(world: World, team: Team, caller: Person | None) -> str:
    return team.owner.email


async def _owner_id(world: World, team: Team, caller: Person | None) -> str:
    return team.owner.user_id


async def _caller_id(world: World, team: Team, caller: Person | None) -> str:
    assert caller is not None, "Ref('caller_id') needs a signed-in caller"
    return caller.user_id


async def _verification_token(world: World, team: Team, caller: Person | None) -> str:
    """Sign up a new user and return the token of their verification email."""
    new_team = await world.sign_up("Unverified Studio")
    return await world.token_sent_to(new_team.owner.email, "verification")


async def _reset_token(world: World, team: Team, caller: Person | None) -> str:
    """Sign up a new user, request a password reset and return the emailed token."""
    email = (await world.sign_up("Forgetful Studio")).owner.email
    response = await world.client.post("/api/v1/auth/password-reset", json={"email": email})
    assert response.status_code == 202, f"setup: {response.text}"
    return await world.token_sent_to(email, "password_reset")


async def _bucket_name(world: World, team: Team, caller: Person | None) -> str:
    return f"bucket-{uuid.uuid4().hex[:12]}"


async def _bucket_id(world: World, team: Team, caller: Person | None) -> str:
    bucket = await world.post(
        "/api/v1/storage/buckets",
        team.owner.headers,
        json={"name": await _bucket_name(world, team, caller)},
    )
    return str(bucket["id"])


async def _workspace_id(world: World, team: Team, caller: Person | None) -> str:
    return str(team.workspace_id)


async def _key(world: World, team: Team, caller: Person | None) -> str:
    return "notes/file.txt"


async def _object_id(world: World, team: Team, caller: Person | None) -> str:
    bucket_id = await _bucket_id(world, team, caller)
    stored = await world.post(
        f"/api/v1/storage/buckets/{bucket_id}/objects",
        team.owner.headers | {"Content-Type": "text/plain"},
        params={"key": "notes/file.txt"},
        content=b"hello, world",
    )
    return str(stored["id"])


async def _image_object_id(world: World, team: Team, caller: Person | None) -> str:
    bucket_id = await _bucket_id(world, team, caller)
    image = io.BytesIO()
    Image.new("RGB", (120, 80), (10, 120, 200)).save(image, format="PNG")
    stored = await world.post(
        f"/api/v1/storage/buckets/{bucket_id}/objects",
        team.owner.headers | {"Content-Type": "image/png"},
        params={"key": "photos/blue.png"},
        content=image.getvalue(),
    )
    return str(stored["id"])


async def _link_token(world: World, team: Team, caller: Person | None) -> str:
    """Create an object and return the token of its download link."""
    object_id = await _object_id(world, team, caller)
    link = await world.post(
        f"/api/v1/storage/objects/{object_id}/links", team.owner.headers, json={"expires_in": 600}
    )
    return str(link["url"]).rsplit("/", 1)[1]


async def _suppression_id(world: World, team: Team, caller: Person | None) -> str:
    entry = await world.post(
        "/api/v1/email/suppressions", team.owner.headers, json={"address": new_email("gone")}
    )
    return str(entry["id"])


async def _template_id(world: World, team: Team, caller: Person | None) -> str:
    template = await world.post(
        "/api/v1/email/templates",
        team.owner.headers,
        json={
            "key": f"t-{uuid.uuid4().hex[:12]}",
            "name": "Welcome",
            "variables": [{"name": "first_name", "type": "string", "sample": "Ada"}],
            "subject": "Welcome, {{ first_name }}",
            "body": "<p>Hello {{ first_name }}</p>",
        },
    )
    return str(template["id"])


async def _inbound_id(world: World, team: Team, caller: Person | None) -> str:
    raw = (
        "From: Camille <camille@example.org>\r\nTo: hello@studio.example\r\n"
        f"Subject: Hello\r\nMessage-ID: <{uuid.uuid4()}@example.org>\r\n\r\nHi\r\n"
    ).encode()
    received = await world.post(
        "/api/v1/email/inbound",
        team.owner.headers | {"Content-Type": "message/rfc822"},
        content=raw,
    )
    return str(received["id"])


async def _locale(world: World, team: Team, caller: Person | None) -> str:
    return "fr"


async def _provider(world: World, team: Team, caller: Person | None) -> str:
    return "postmark"


async def _stripe_webhook_token(world: World, team: Team, caller: Person | None) -> str:
    """Store Stripe keys for the team's workspace, as PUT does after Stripe accepts them."""
    from frontdesk.payments.models import StripeAccount

    workspace_id = uuid.UUID(team.workspace_id)
    async with unit_of_work(world.runtime) as uow:
        account = await uow.session.get(StripeAccount, workspace_id)
        if account is None:
            account = StripeAccount(
                workspace_id=workspace_id,
                secret_key_encrypted=uow.rt.cipher.encrypt_text(
                    "sk_test_matrix", associated_data=f"stripe-account:{workspace_id}".encode()
                ),
                webhook_token=uuid.uuid4().hex,
                created_at=uow.now(),
                updated_at=uow.now(),
            )
            uow.session.add(account)
        return account.webhook_token


async def _conversation_id(world: World, team: Team, caller: Person | None) -> str:
    conversation = await world.post(
        "/api/v1/conversations", team.owner.headers, json={"channel": "chat", "subject": "Hi"}
    )
    # _message_id posts into this conversation, so a request's two ids belong together.
    world._cache[(team.workspace_id, "", "last_conversation_id")] = conversation["id"]
    return str(conversation["id"])


async def _message_id(world: World, team: Team, caller: Person | None) -> str:
    """Post a message by the team's owner in the conversation Ref('conversation_id') made last."""
    key = (team.workspace_id, "", "last_conversation_id")
    conversation_id = world._cache.get(key) or await _conversation_id(world, team, caller)
    message = await world.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        team.owner.headers,
        json={"body": "Hello from the matrix"},
    )
    return str(message["id"])


async def _canned(world: World, team: Team, body: str) -> Any:
    return await world.post(
        "/api/v1/canned-responses",
        team.owner.headers,
        json={"shortcut": f"c-{uuid.uuid4().hex[:12]}", "title": "Greeting", "body": body},
    )


async def _public_key(world: World, team: Team, caller: Person | None) -> str:
    """Return the team's website chat key, with ORIGIN as the only allowed origin."""
    response = await world.client.put(
        "/api/v1/chat/settings", headers=team.owner.headers, json={"allowed_origins": [ORIGIN]}
    )
    assert response.status_code == 200, f"setup PUT chat settings: {response.text}"
    return str(response.json()["public_key"])


async def _visitor_id(world: World, team: Team, caller: Person | None) -> str:
    """Create a website chat visitor of the team through the public visitor API."""
    key = await _public_key(world, team, caller)
    response = await world.client.post(f"/chat/{key}/visitors", json={"name": "Camille"})
    assert response.status_code == 201, f"setup POST visitor: {response.text}"
    return str(response.json()["visitor"]["id"])


async def _canned_response_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _canned(world, team, "Hello {{ contact.name }}"))["id"])


async def _broken_canned_response_id(world: World, team: Team, caller: Person | None) -> str:
    """A canned response that saves but fails to render for a contact without a name."""
    return str((await _canned(world, team, "Hi {{ contact.name.upper() }}"))["id"])


async def _taken_shortcut(world: World, team: Team, caller: Person | None) -> str:
    return str((await _canned(world, team, "Taken"))["shortcut"])


async def _plan_id(world: World, team: Team, caller: Person | None) -> str:
    plan = await world.post(
        "/api/v1/plans",
        team.owner.headers,
        json={"name": "Care", "amount": 2500, "currency": "EUR", "interval": "month"},
    )
    return str(plan["id"])


async def _subscription(world: World, team: Team) -> Any:
    """Subscribe a new contact to a new plan of the team (manual, invoiced at once)."""
    return await world.post(
        "/api/v1/subscriptions",
        team.owner.headers,
        json={
            "contact_id": await _contact_id(world, team, None),
            "plan_id": await _plan_id(world, team, None),
        },
    )


async def _subscription_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _subscription(world, team))["id"])


async def _paused_subscription_id(world: World, team: Team, caller: Person | None) -> str:
    subscription_id = await _subscription_id(world, team, caller)
    await world.post(f"/api/v1/subscriptions/{subscription_id}/pause", team.owner.headers)
    return subscription_id


async def _used_plan_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _subscription(world, team))["plan_id"])


# Path parameters must have an entry here: the 404 check fills them with workspace B's
# resources, and valid requests with fresh resources of the caller's workspace.
async def _draft_invoice_id(world: World, team: Team, caller: Person | None) -> str:
    contact_id = await _contact_id(world, team, caller)
    invoice = await world.post(
        "/api/v1/invoices",
        team.owner.headers,
        json={
            "contact_id": contact_id,
            "currency": "EUR",
            "lines": [{"description": "Wedding photos", "unit_price": 120000, "tax_rate": "20"}],
        },
    )
    return str(invoice["id"])


async def _issued_invoice_id(world: World, team: Team, caller: Person | None) -> str:
    invoice_id = await _draft_invoice_id(world, team, caller)
    await world.post(f"/api/v1/invoices/{invoice_id}/issue", team.owner.headers, json={})
    return invoice_id


async def _payment(world: World, team: Team, status: str) -> Any:
    """Record a manual payment of 40000 on a new issued invoice of 144000."""
    invoice_id = await _issued_invoice_id(world, team, None)
    return await world.post(
        f"/api/v1/invoices/{invoice_id}/payments",
        team.owner.headers,
        json={"amount": 40000, "method": "bank_transfer", "status": status},
    )


async def _payment_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _payment(world, team, "succeeded"))["id"])


async def _pending_payment_id(world: World, team: Team, caller: Person | None) -> str:
    return str((await _payment(world, team, "pending"))["id"])


async def _credit_note_id(world: World, team: Team, caller: Person | None) -> str:
    invoice_id = await _issued_invoice_id(world, team, caller)
    note = await world.post(
        f"/api/v1/invoices/{invoice_id}/credit-notes", team.owner.headers, json={"amount": 1000}
    )
    return str(note["id"])


ID_FACTORIES: dict[str, Resolver] = {
    "invoice_id": _draft_invoice_id,
    "payment_id": _payment_id,
    "credit_note_id": _credit_note_id,
    "form_id": _form_id,
    "public_id": _public_id,
    "enquiry_id": _enquiry_id,
    "contact_id": _contact_id,
    "user_id": _user_id,
    "invitation_id": _invitation_id,
    "notification_id": _notification_id,
    "email_id": _email_id,
    "job_id": _job_id,
    "suppression_id": _suppression_id,
    "provider": _provider,
    "template_id": _template_id,
    "inbound_id": _inbound_id,
    "locale": _locale,
    "session_id": _session_id,
    "tag": _tag,
    "bucket_id": _bucket_id,
    "object_id": _object_id,
    "token": _link_token,
    "workspace_id": _workspace_id,
    "bucket_name": _bucket_name,
    "key": _key,
    "conversation_id": _conversation_id,
    "message_id": _message_id,
    "canned_response_id": _canned_response_id,
    "public_key": _public_key,
    "visitor_id": _visitor_id,
    "plan_id": _plan_id,
    "subscription_id": _subscription_id,
    "webhook_token": _stripe_webhook_token,
}
# Values that must differ on every use, such as the address of a new account.
UNIQUE_VALUES = {"new_email", "bucket_name"}
RESOLVERS: dict[str, Resolver] = {
    **ID_FACTORIES,
    "new_email": _new_email,
    "image_object_id": _image_object_id,
    "owner_email": _owner_email,
    "owner_id": _owner_id,
    "caller_id": _caller_id,
    "owner_invitation_id": _owner_invitation_id,
    "admin_notification_id": _admin_notification_id,
    "admin_session_id": _admin_session_id,
    "invitation_token": _invitation_token,
    "verification_token": _verification_token,
    "reset_token": _reset_token,
    "broken_canned_response_id": _broken_canned_response_id,
    "taken_shortcut": _taken_shortcut,
    "draft_invoice_id": _draft_invoice_id,
    "issued_invoice_id": _issued_invoice_id,
    "pending_payment_id": _pending_payment_id,
    "paused_subscription_id": _paused_subscription_id,
    "used_plan_id": _used_plan_id,
}


@pytest.fixture(scope="module")
def settings_overrides() -> dict[str, Any]:
    # The matrix signs up and logs in far more often than the limits allow.
    return {"rate_limits_enabled": False}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    settings_overrides: dict[str, Any],
) -> AsyncIterator[World]:
    """The app with workspaces A and B, each with an owner, an admin, an agent and resources."""
    await truncate_all(database_url)
    settings = make_settings(
        database_url, tmp_path_factory.mktemp("route-matrix"), **settings_overrides
    )
    app = create_app(settings, clock=FrozenClock(), run_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(
            app=app, client=("127.0.0.1", 40000), raise_app_exceptions=False
        )
        async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as http:
            world = World(client=http, runtime=app.state.runtime)
            world.teams["a"] = await world.make_team("Studio A")
            world.teams["b"] = await world.make_team("Studio B")
            root = await world.sign_up("Instance Studio")
            await world.set_user(root.owner, is_instance_admin=True)
            world.instance_admin = root.owner
            for team in (world.a, world.b):
                for name in ID_FACTORIES:
                    await world.value(name, team, team.owner, fresh=False)
            yield world


# --- Requests and checks --------------------------------------------------------------------


@dataclass
class Prepared:
    """A request with its references resolved, ready to send."""

    path: dict[str, Any]
    caller: Person | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = OMIT
    query: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None


async def prepare(
    world: World,
    route: RouteInfo,
    case: Case,
    *,
    team: Team,
    caller: Person | None,
    fresh: bool,
    path: dict[str, Any] | None = None,
) -> Prepared:
    """Create what a case refers to. A given ``path`` replaces its path parameters."""
    values = {name: Ref(name) for name in route.path_params} | dict(case.path)
    return Prepared(
        path=path if path is not None else await world.resolve(values, team, caller, fresh=fresh),
        caller=caller,
        headers=dict(case.headers),
        body=await world.resolve(case.body, team, caller, fresh=fresh),
        query=await world.resolve(dict(case.query), team, caller, fresh=fresh),
        content=case.content,
    )


async def send(world: World, route: RouteInfo, request: Prepared) -> httpx.Response:
    """Send one request of the matrix and fail the test at once on a 5xx response."""
    url = route.path
    for name, value in request.path.items():
        url = url.replace("{" + name + "}", quote(str(value), safe=""))
    headers = {**(request.caller.headers if request.caller else {}), **request.headers}
    kwargs: dict[str, Any] = {"params": request.query, "headers": headers}
    if request.content is not None:
        headers.setdefault("Content-Type", "application/json")
        kwargs["content"] = request.content
    elif request.body is not OMIT:
        kwargs["json"] = request.body
    response = await world.client.request(route.method, url, **kwargs)
    assert response.status_code < 500, f"{route} returned {response.status_code}: {response.text}"
    return response


# Path parameters that are names rather than ids keep a valid value; the ids beside them are
# the unknown part.
NAME_PARAMS = {"tag": "vip", "locale": "fr"}


def random_path(route: RouteInfo) -> dict[str, str]:
    return {name: NAME_PARAMS.get(name, str(uuid.uuid4())) for name in route.path_params}


async def snapshot(runtime: Runtime) -> dict[str, list[str]]:
    """Every row of every table, each as a JSON array of its values, sorted per table."""
    rows: dict[str, list[str]] = {table.name: [] for table in Base.metadata.sorted_tables}
    async with runtime.engine.connect() as connection:
        result = await connection.execute(_snapshot_query(connection.dialect.name))
        for table_name, row in result:
            rows[table_name].append(row)
    return {name: sorted(values) for name, values in rows.items()}


def _snapshot_query(dialect: str) -> sa.CompoundSelect:
    # One statement for all tables: a query per table made the snapshot slower than the
    # request it checks.
    to_json = sa.func.json_build_array if dialect == "postgresql" else sa.func.json_array
    return sa.union_all(
        *(
            sa.select(
                sa.literal_column(f"'{table.name}'").label("table_name"),
                sa.cast(to_json(*table.columns), sa.Text).label("row"),
            )
            for table in Base.metadata.sorted_tables
        )
    )


def changed_tables(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    changed = []
    for name, rows in before.items():
        if len(rows) != len(after[name]):
            changed.append(f"{name} ({len(rows)} -> {len(after[name])} rows)")
        elif rows != after[name]:
            changed.append(f"{name} (a row changed)")
    return changed


def assert_problem(response: httpx.Response, status: int, route: RouteInfo, label: str) -> None:
    assert response.status_code == status, (
        f"{route} {label}: expected {status}, got {response.status_code}: {response.text}"
    )
    content_type = response.headers.get("content-type")
    assert content_type == PROBLEM, f"{route} {label}: content type {content_type}"


def problem_names(response: httpx.Response, name: str) -> bool:
    """Whether the problem lists ``name`` in ``errors[].field`` or names it in ``detail``."""
    problem = response.json()
    fields = [error.get("field") for error in problem.get("errors", [])]
    # A whole name: "tags" does not match "tags.0", but may end a sentence.
    word = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w|\.\w)")
    return name in fields or word.search(problem.get("detail", "")) is not None


# --- The table is complete ------------------------------------------------------------------


def test_every_route_has_cases() -> None:
    missing = [str(r) for r in ROUTES if r.key not in CASES and r.key not in EXCLUDED]
    assert not missing, f"add these routes to CASES or EXCLUDED in route_cases.py: {missing}"


def test_no_stale_cases() -> None:
    keys = {route.key for route in ROUTES}
    stale = [f"{m} {p}" for m, p in [*CASES, *EXCLUDED] if (m, p) not in keys]
    assert not stale, f"route_cases.py lists routes that the app does not have: {stale}"


def test_access_matches_table() -> None:
    for route in API_ROUTES:
        expected = CASES[route.key].access
        assert route.access == expected, f"{route} requires {route.access}, expected {expected}"


def test_inputs_have_invalid_cases() -> None:
    for route in API_ROUTES:
        if route.has_input:
            assert CASES[route.key].invalid, f"{route} takes input but has no invalid case"


def test_id_params_have_factories() -> None:
    for route in ROUTES:
        missing = [name for name in route.path_params if name not in ID_FACTORIES]
        assert not missing, f"{route}: add ID_FACTORIES entries for {missing}"


# --- Authentication and roles ---------------------------------------------------------------


@pytest.mark.parametrize("route", AUTHENTICATED, ids=str)
@module_loop
async def test_requires_credentials(world: World, route: RouteInfo) -> None:
    path = random_path(route)
    before = await snapshot(world.runtime)

    response = await send(world, route, Prepared(path))
    assert_problem(response, 401, route, "without credentials")

    garbage = {"Authorization": "Bearer garbage"}
    response = await send(world, route, Prepared(path, headers=garbage))
    assert_problem(response, 401, route, "with a garbage token")

    basic = {"Authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="}
    response = await send(world, route, Prepared(path, headers=basic))
    assert_problem(response, 401, route, "with Basic credentials")

    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{route} without credentials changed {changed}"


@pytest.mark.parametrize("route", BELOW_MINIMUM, ids=str)
@module_loop
async def test_role_below_minimum(world: World, route: RouteInfo) -> None:
    role = CALLER_BELOW[route.access]
    caller = world.a.members[role]
    case = CASES[route.key].ok if route.key in CASES else Case(200)
    request = await prepare(world, route, case, team=world.a, caller=caller, fresh=False)
    before = await snapshot(world.runtime)

    response = await send(world, route, request)

    assert_problem(response, 403, route, f"as {role}")
    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{route} as {role} changed {changed}"


@pytest.mark.parametrize(("route", "index"), DENIED_CASES)
@module_loop
async def test_service_denies(world: World, route: RouteInfo, index: int) -> None:
    case = CASES[route.key].denied[index]
    team, caller = await world.caller(case.caller)
    request = await prepare(world, route, case, team=team, caller=caller, fresh=False)
    before = await snapshot(world.runtime)

    response = await send(world, route, request)

    assert_problem(response, case.status, route, f"as {case.caller}")
    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{route} denied as {case.caller} changed {changed}"


# --- Ids of other workspaces ----------------------------------------------------------------


@pytest.mark.parametrize("route", SCOPED, ids=str)
@module_loop
async def test_other_workspace_404(world: World, route: RouteInfo) -> None:
    missing = [name for name in route.path_params if name not in ID_FACTORIES]
    assert not missing, f"{route}: add ID_FACTORIES entries for {missing}"
    theirs = {
        name: await world.value(name, world.b, world.b.owner, fresh=False)
        for name in route.path_params
    }
    # A's owner sends the route's valid request, with B's ids in the path.
    case = CASES[route.key].ok if route.key in CASES else Case(200)
    caller = world.a.owner
    request = await prepare(
        world, route, case, team=world.a, caller=caller, fresh=False, path=theirs
    )
    before = await snapshot(world.runtime)

    response = await send(world, route, request)

    assert_problem(response, 404, route, "with workspace B's ids")
    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{route} with workspace B's ids changed {changed}"


@pytest.mark.parametrize("route", WITH_PARAMS, ids=str)
@module_loop
async def test_unknown_ids_404(world: World, route: RouteInfo) -> None:
    case = CASES[route.key].ok
    team, caller = await world.caller(case.caller)
    request = await prepare(
        world, route, case, team=team, caller=caller, fresh=False, path=random_path(route)
    )
    before = await snapshot(world.runtime)

    response = await send(world, route, request)

    assert_problem(response, 404, route, "with unknown ids")
    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{route} with unknown ids changed {changed}"


# --- Valid and invalid requests -------------------------------------------------------------


@pytest.mark.parametrize("route", API_ROUTES, ids=str)
@module_loop
async def test_valid_request(world: World, route: RouteInfo) -> None:
    case = CASES[route.key].ok
    team, caller = await world.caller(case.caller)
    request = await prepare(world, route, case, team=team, caller=caller, fresh=True)

    response = await send(world, route, request)

    assert response.status_code == case.status, (
        f"{route} as {case.caller}: expected {case.status}, got {response.status_code}: "
        f"{response.text}"
    )


@pytest.mark.parametrize(("route", "index"), INVALID_CASES)
@module_loop
async def test_invalid_request(world: World, route: RouteInfo, index: int) -> None:
    case = CASES[route.key].invalid[index]
    assert 400 <= case.status < 500, f"{route}#{index}: an invalid case must expect a 4xx"
    assert case.field or case.code, f"{route}#{index}: name the rejected field or the code"
    dialect = world.runtime.engine.dialect.name
    known_bug = case.bug if case.bug and dialect in case.bug_on else None
    team, caller = await world.caller(case.caller)
    request = await prepare(world, route, case, team=team, caller=caller, fresh=False)

    try:
        await check_rejected(world, route, f"{route}#{index}", case, request)
    except AssertionError:
        if known_bug:
            pytest.xfail(f"known bug on {dialect}: {known_bug}")
        raise
    assert not known_bug, f"{route}#{index} now passes on {dialect}; remove its `bug` mark"


async def check_rejected(
    world: World, route: RouteInfo, label: str, case: Case, request: Prepared
) -> None:
    """Send an invalid request, then check its status, problem, named field and the tables."""
    before = await snapshot(world.runtime)

    response = await send(world, route, request)

    assert_problem(response, case.status, route, label)
    if case.field:
        assert problem_names(response, case.field), (
            f"{label}: the problem does not name '{case.field}': {response.text}"
        )
    if case.code:
        code = response.json().get("code")
        assert code == case.code, f"{label}: code {code}, expected {case.code}"
    changed = changed_tables(before, await snapshot(world.runtime))
    assert not changed, f"{label} stored or changed {changed}"
