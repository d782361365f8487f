"""Sample data for a newcomer: a workspace with forms, contacts and enquiries in every state.

The demo drives the application through its own HTTP API in this process, so the sample data
goes through the same validation, contact matching, timelines, notifications and emails as
real traffic. Customers use addresses under example.com, a domain reserved for examples.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx
import sqlalchemy as sa

from frontdesk.app import create_app
from frontdesk.auth.models import User
from frontdesk.config import Settings

BOOKING_FORM: dict[str, Any] = {
    "name": "Studio booking enquiry",
    "fields": [
        {"key": "name", "type": "text", "label": "Your name", "required": True},
        {"key": "email", "type": "email", "label": "Email", "required": True},
        {"key": "phone", "type": "phone", "label": "Phone", "required": False},
        {
            "key": "session",
            "type": "choice",
            "label": "Kind of session",
            "required": True,
            "options": [
                {"value": "portrait", "label": "Portrait"},
                {"value": "product", "label": "Product photography"},
                {"value": "event", "label": "Event"},
            ],
        },
        {"key": "date", "type": "date", "label": "Preferred date", "required": False},
        {"key": "message", "type": "long_text", "label": "Tell us more", "required": True},
        {
            "key": "privacy",
            "type": "consent",
            "label": "I agree that the studio stores my details to answer this enquiry.",
            "required": True,
        },
    ],
}

CONTACT_FORM: dict[str, Any] = {
    "name": "Formulaire de contact",
    "language": "fr",
    "fields": [
        {"key": "name", "type": "text", "label": "Nom", "required": True},
        {"key": "email", "type": "email", "label": "E-mail", "required": True},
        {"key": "message", "type": "long_text", "label": "Message", "required": True},
    ],
}

CUSTOMERS = [
    ("Amelia Hart", "amelia.hart@example.com", "+44 20 7946 0958", "portrait"),
    ("Kenji Watanabe", "kenji.watanabe@example.com", None, "product"),
    ("Sofia Rossi", "sofia.rossi@example.com", "+39 06 6988 4567", "event"),
    ("Liam O'Connor", "liam.oconnor@example.com", None, "portrait"),
    ("Nadia Haddad", "nadia.haddad@example.com", None, "event"),
    ("Pedro Alves", "pedro.alves@example.com", "+351 21 346 2000", "product"),
    ("Chloé Martin", "chloe.martin@example.com", None, "portrait"),
    ("Ama Mensah", "ama.mensah@example.com", None, "event"),
]

MESSAGES = [
    "We are launching a new product line and need clean shots on white for our shop.",
    "Could we book a family portrait on a Saturday morning? Two adults and two children.",
    "Looking for a photographer for our company's 10th anniversary evening, about 80 guests.",
    "Do you offer headshots for a team of six? We can come to the studio together.",
]

# Status, tags and whether the owner takes the enquiry, for the enquiries after the newest.
PIPELINE = [
    ("open", ["priority"], True),
    ("awaiting_customer", ["quote-sent"], True),
    ("won", ["repeat-customer"], True),
    ("lost", [], False),
    ("closed", ["spam-check"], False),
    ("open", [], False),
]


@dataclass
class DemoSummary:
    email: str
    password: str
    workspace: str
    forms: list[str]
    enquiries: int
    chat_demo: str
    already_filled: bool = False

    def __str__(self) -> str:
        added = (
            f"The workspace '{self.workspace}' already has its sample data; nothing was added."
            if self.already_filled
            else f"Added {self.enquiries} sample enquiries to the workspace '{self.workspace}'."
        )
        lines = [
            added,
            f"Log in as {self.email} with password {self.password}.",
            "Public forms:",
            *(f"  {url}" for url in self.forms),
            f"Website chat demo: {self.chat_demo}",
        ]
        return "\n".join(lines)


class DemoFailed(Exception):
    """A request of the demo failed; the message names the request and the reason."""


async def _email_taken(runtime: Any, email: str) -> bool:
    async with runtime.sessionmaker() as session:
        found = await session.scalar(sa.select(User.id).where(User.email == email.lower()))
    return found is not None


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
            reason = problem.get("detail") or response.text
            errors = problem.get("errors") or []
        except ValueError:
            reason, errors = response.text, []
        fields = "; ".join(f"{error['field']}: {error['message']}" for error in errors)
        raise DemoFailed(
            f"{response.request.method} {response.request.url.path} failed with status "
            f"{response.status_code}: {fields or reason}"
        )
    if response.status_code == 204:
        return {}
    body: dict[str, Any] = response.json()
    return body


async def fill_demo_workspace(settings: Settings, *, email: str, password: str) -> DemoSummary:
    """Create (or reuse) the demo owner and add two forms and a set of enquiries."""
    demo_settings = settings.model_copy(
        update={"rate_limits_enabled": False, "form_min_fill_seconds": 0}
    )
    app = create_app(demo_settings, run_worker=False)
    runtime = app.state.runtime
    rng = random.Random(7)  # noqa: S311 (sample data)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo.local") as client:
            login = await client.post(
                "/api/v1/auth/token",
                json={"grant_type": "password", "email": email, "password": password},
            )
            if login.status_code == 200:
                tokens = login.json()
            elif await _email_taken(runtime, email):
                raise DemoFailed(
                    f"{email} already has an account with another password; run again with "
                    "its --password, or choose another --email."
                )
            else:
                tokens = _check(
                    await client.post(
                        "/api/v1/auth/signup",
                        json={
                            "email": email,
                            "password": password,
                            "full_name": "Dana Demo",
                            "workspace_name": "Lumen Photo Studio",
                            "default_country": "GB",
                        },
                    )
                )
                async with runtime.sessionmaker() as session:
                    # The demo address receives no mail, so its verification is done here.
                    await session.execute(
                        sa.update(User)
                        .where(User.email == email.lower())
                        .values(email_verified_at=runtime.clock.now())
                    )
                    await session.commit()
            headers = {"Authorization": f"Bearer {tokens['access_token']}"}
            owner_id = tokens["user"]["id"]
            workspace_name = tokens["workspace"]["name"]

            # Reading the chat settings creates them, which turns the website chat on. The
            # chat demo page shows the widget of the oldest workspace with the chat on.
            _check(await client.get("/api/v1/chat/settings", headers=headers))
            chat_demo = f"{settings.resolved_public_url.rstrip('/')}/chat/demo"

            existing = _check(await client.get("/api/v1/forms", headers=headers))["items"]
            if any(form["name"] == BOOKING_FORM["name"] for form in existing):
                # The list is newest first; show the forms in the order the first run
                # created and printed them.
                order = [BOOKING_FORM["name"], CONTACT_FORM["name"]]
                existing.sort(
                    key=lambda form: (
                        order.index(form["name"]) if form["name"] in order else len(order)
                    )
                )
                return DemoSummary(
                    email=email,
                    password=password,
                    workspace=workspace_name,
                    forms=[form["public_url"] for form in existing],
                    enquiries=0,
                    chat_demo=chat_demo,
                    already_filled=True,
                )

            forms = [
                _check(await client.post("/api/v1/forms", headers=headers, json=definition))
                for definition in (BOOKING_FORM, CONTACT_FORM)
            ]
            booking_path = httpx.URL(forms[0]["public_url"]).path
            contact_path = httpx.URL(forms[1]["public_url"]).path

            created = 0
            for index, (name, address, phone, session_kind) in enumerate(CUSTOMERS):
                answers: dict[str, Any] = {
                    "name": name,
                    "email": address,
                    "session": session_kind,
                    "message": rng.choice(MESSAGES),
                    "privacy": True,
                }
                if phone:
                    answers["phone"] = phone
                if index % 3 == 0:
                    answers["date"] = f"2027-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}"
                _check(await client.post(booking_path, json=answers))
                created += 1
            _check(
                await client.post(
                    contact_path,
                    json={
                        "name": "Chloé Martin",
                        "email": "chloe.martin@example.com",
                        "message": "Bonjour, proposez-vous des séances photo en extérieur ?",
                    },
                )
            )
            created += 1

            listing = _check(
                await client.get("/api/v1/enquiries", headers=headers, params={"limit": created})
            )
            # The newest enquiry stays new; older ones move through the pipeline.
            for enquiry, (status, tags, assign) in zip(
                listing["items"][1:], PIPELINE, strict=False
            ):
                update: dict[str, Any] = {"status": status}
                if assign:
                    update["assignee_id"] = owner_id
                _check(
                    await client.patch(
                        f"/api/v1/enquiries/{enquiry['id']}", headers=headers, json=update
                    )
                )
                if tags:
                    _check(
                        await client.post(
                            f"/api/v1/enquiries/{enquiry['id']}/tags",
                            headers=headers,
                            json={"tags": tags},
                        )
                    )
    return DemoSummary(
        email=email,
        password=password,
        workspace=workspace_name,
        forms=[form["public_url"] for form in forms],
        enquiries=created,
        chat_demo=chat_demo,
    )
