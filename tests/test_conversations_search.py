"""Message search: words, filters, notes and deletions, snippets, and hostile queries."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import Staff, owner
from frontdesk.contacts.models import Contact
from frontdesk.conversations import search
from frontdesk.conversations.search import (
    fts5_match_expression,
    fts5_terms,
    query_tokens,
    snippet,
)
from frontdesk.core.clock import FrozenClock
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime

API = "/api/v1/conversations"
SEARCH = f"{API}/search"

HOSTILE_QUERIES = [
    "",
    " ",
    '"',
    '"unbalanced',
    "'",
    "AND",
    "OR",
    "NOT",
    "hello AND",
    "OR hello",
    "NOT hello",
    "hello NOT",
    "NEAR(hello world)",
    "NEAR(hello world, 2)",
    "hello*",
    "*",
    "^hello",
    "^",
    "body:hello",
    "message_id:hello",
    "{body}: hello",
    "- hello",
    "hello -",
    "(hello",
    "hello)",
    "()",
    "+",
    ":",
    "::",
    "!",
    "& | ! :*",
    "hello:*",
    "hello & world",
    "hello <-> world",
    "😀",
    "😀 hello 😀",
    "\x00",
    "hello\x00world",
    "\\",
    "%",
    "_",
    "x" * 5000,
    "hello " * 900,
    "a" + "-" * 4000,
]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"rate_limits_enabled": False}


async def _create(client: httpx.AsyncClient, staff: Staff, **body: Any) -> str:
    response = await client.post(API, json={"channel": "chat", **body}, headers=staff.headers)
    assert response.status_code == 201, response.text
    conversation_id: str = response.json()["id"]
    return conversation_id


async def _message(
    client: httpx.AsyncClient, staff: Staff, conversation_id: str, text: str, kind: str = "message"
) -> dict[str, Any]:
    response = await client.post(
        f"{API}/{conversation_id}/messages",
        json={"body": text, "kind": kind},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def _search(client: httpx.AsyncClient, staff: Staff, q: str, **params: Any) -> Any:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=staff.headers)
    assert response.status_code == 200, f"{q[:50]!r}: {response.text}"
    return response.json()


async def _found(client: httpx.AsyncClient, staff: Staff, q: str, **params: Any) -> list[str]:
    return [item["body"] for item in (await _search(client, staff, q, **params))["items"]]


# --- Query handling, without a database ------------------------------------------------------


def test_query_tokens_keep_only_words() -> None:
    assert query_tokens('body:"Hello" AND NEAR(x*, ^y) 😀 _z_') == [
        "body",
        "hello",
        "and",
        "near",
        "x",
        "y",
        "z",
    ]
    assert query_tokens("\x00 () :* ") == []


def test_match_expression_quotes_every_token() -> None:
    assert fts5_match_expression(["and", "or"]) == '"and" "or"'
    assert fts5_match_expression(['a"b']) == '"a""b"'


def test_fts5_terms_match_index() -> None:
    assert fts5_terms('Café "CRÈME" café AND near(x*)') == ["cafe", "creme", "and", "near", "x"]
    assert fts5_terms(":: () *") == []


def test_snippet_escapes_and_marks() -> None:
    body = "<b>Price</b> & café prices: see the PRICE list"

    result = snippet(body, ["price", "cafe"])

    assert result == (
        "&lt;b&gt;<mark>Price</mark>&lt;/b&gt; &amp; <mark>café</mark> prices: see the "
        "<mark>PRICE</mark> list"
    )


def test_snippet_cuts_long_bodies() -> None:
    words = [f"w{i}" for i in range(100)]
    words[50] = "needle"

    result = snippet(" ".join(words), ["needle"])

    assert result.startswith("…w38 ")
    assert result.endswith(" w62…")
    assert "<mark>needle</mark>" in result


# --- Searching ------------------------------------------------------------------------------


async def test_finds_words_in_messages_and_notes(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "The wedding album is ready")
    await _message(client, staff, cid, "Customer prefers a WEDDING in June", kind="note")
    await _message(client, staff, cid, "Unrelated text")

    assert await _found(client, staff, "wedding") == [
        "Customer prefers a WEDDING in June",
        "The wedding album is ready",
    ]
    assert await _found(client, staff, "wedding album") == ["The wedding album is ready"]
    assert await _found(client, staff, "album june") == []
    assert await _found(client, staff, "wed") == []
    # Operators are words like any other.
    assert await _found(client, staff, "wedding OR unrelated") == []


async def test_sqlite_folds_diacritics(client: httpx.AsyncClient, runtime: Runtime) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "Un café crème, s'il vous plaît")

    assert await _found(client, staff, "CAFÉ") == ["Un café crème, s'il vous plaît"]
    if runtime.engine.dialect.name == "sqlite":
        assert await _found(client, staff, "cafe creme") == ["Un café crème, s'il vous plaît"]


async def test_words_of_newer_scripts_found(client: httpx.AsyncClient) -> None:
    # Adlam (Unicode 9.0) has upper and lower case. Python lower-cases it, SQLite 3.40's
    # FTS5 tokenizer keeps it as written.
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "adlam 𞤀𞤁 letters")

    assert await _found(client, staff, "adlam 𞤀𞤁") == ["adlam 𞤀𞤁 letters"]
    assert await _found(client, staff, "𞤀𞤁") == ["adlam 𞤀𞤁 letters"]


async def test_edits_and_deletions_update_results(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    edited = await _message(client, staff, cid, "old wording here")
    removed = await _message(client, staff, cid, "secret wording here")
    base = f"{API}/{cid}/messages"

    response = await client.patch(
        f"{base}/{edited['id']}", json={"body": "new phrasing here"}, headers=staff.headers
    )
    assert response.status_code == 200, response.text
    response = await client.delete(f"{base}/{removed['id']}", headers=staff.headers)
    assert response.status_code == 200, response.text

    assert await _found(client, staff, "old") == []
    assert await _found(client, staff, "phrasing") == ["new phrasing here"]
    assert await _found(client, staff, "secret") == []
    assert await _found(client, staff, "here") == ["new phrasing here"]


async def test_system_messages_and_other_workspaces_not_found(
    client: httpx.AsyncClient,
) -> None:
    staff = await owner(client)
    other = await owner(client)
    cid = await _create(client, staff)
    theirs = await _create(client, other)
    await _message(client, other, theirs, "resolved pending open")
    response = await client.patch(
        f"{API}/{cid}", json={"status": "resolved"}, headers=staff.headers
    )
    assert response.status_code == 200

    assert await _found(client, staff, "resolved") == []
    assert await _found(client, staff, "open", conversation_id=theirs) == []
    assert await _found(client, other, "resolved") == ["resolved pending open"]


async def test_filters(client: httpx.AsyncClient, runtime: Runtime, clock: FrozenClock) -> None:
    staff = await owner(client)
    async with unit_of_work(runtime) as uow:
        contact = Contact(
            workspace_id=staff.workspace_id,
            name="Camille",
            created_at=uow.now(),
            updated_at=uow.now(),
        )
        uow.session.add(contact)
        await uow.session.flush()
        contact_id = str(contact.id)
    chat = await _create(client, staff, contact_id=contact_id)
    email = await _create(client, staff, channel="email")
    start = clock.now()
    await _message(client, staff, chat, "quote early")
    clock.advance(minutes=5)
    middle = clock.now()
    await _message(client, staff, email, "quote later")

    assert await _found(client, staff, "quote", conversation_id=chat) == ["quote early"]
    assert await _found(client, staff, "quote", contact_id=contact_id) == ["quote early"]
    assert await _found(client, staff, "quote", channel="email") == ["quote later"]
    assert await _found(client, staff, "quote", **{"from": middle.isoformat()}) == ["quote later"]
    assert await _found(client, staff, "quote", to=middle.isoformat()) == ["quote early"]
    naive_start = start.replace(tzinfo=None).isoformat()
    assert await _found(client, staff, "quote", **{"from": naive_start}) == [
        "quote later",
        "quote early",
    ]

    for params, field in (
        ({"channel": "fax"}, "channel"),
        ({"conversation_id": "nope"}, "conversation_id"),
        ({"from": "yesterday"}, "from"),
        ({"limit": 0}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
    ):
        response = await client.get(SEARCH, params={"q": "quote", **params}, headers=staff.headers)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    missing = await client.get(SEARCH, headers=staff.headers)
    assert [e["field"] for e in missing.json()["errors"]] == ["q"]


async def test_results_newest_first_with_cursor(
    client: httpx.AsyncClient, clock: FrozenClock
) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    for index in range(5):
        await _message(client, staff, cid, f"invoice number {index}")
        clock.advance(seconds=1)

    bodies: list[str] = []
    cursor = None
    # Bounded, so that a cursor that repeats a page fails instead of looping.
    for _ in range(20):
        page = await _search(
            client, staff, "invoice", limit=2, **({"cursor": cursor} if cursor else {})
        )
        bodies += [item["body"] for item in page["items"]]
        assert all(item["conversation_id"] == cid for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert bodies == [f"invoice number {index}" for index in reversed(range(5))]


@pytest.mark.parametrize("joined_matches", [0, 3])
async def test_rare_and_common_words_found(
    client: httpx.AsyncClient,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    joined_matches: int,
) -> None:
    # On SQLite, a word in at most MAX_JOINED_MATCHES messages is read from the FTS5 table
    # first, and a more common one by walking the workspace's messages. With 0 every word
    # walks, and with 3 "rare" (3 messages, one of another workspace) is read first.
    monkeypatch.setattr(search, "MAX_JOINED_MATCHES", joined_matches)
    staff = await owner(client)
    other = await owner(client)
    first = await _create(client, staff)
    second = await _create(client, staff)
    for index in range(4):
        await _message(client, staff, first if index % 2 else second, f"common {index}")
        clock.advance(seconds=1)
    await _message(client, staff, first, "rare common 4")
    clock.advance(seconds=1)
    await _message(client, staff, second, "rare 5")
    await _message(client, other, await _create(client, other), "rare elsewhere")

    assert await _found(client, staff, "common") == [
        "rare common 4",
        "common 3",
        "common 2",
        "common 1",
        "common 0",
    ]
    assert await _found(client, staff, "rare") == ["rare 5", "rare common 4"]
    assert await _found(client, staff, "rare", conversation_id=first) == ["rare common 4"]
    page = await _search(client, staff, "rare", limit=1)
    assert [item["body"] for item in page["items"]] == ["rare 5"]
    rest = await _search(client, staff, "rare", limit=1, cursor=page["next_cursor"])
    assert [item["body"] for item in rest["items"]] == ["rare common 4"]
    assert rest["next_cursor"] is None
    assert await _found(client, staff, "elsewhere") == []


async def test_sqlite_rare_word_starts_from_fts(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    # A statement that walked the workspace's messages for a rare word would scan them all.
    # Searches read through the read engine.
    if runtime.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan")
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "rare word")
    statements: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "ORDER BY" in statement and "conversation_messages_fts" in statement:
            statements.append((statement, parameters))

    sa.event.listen(runtime.read_engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await _found(client, staff, "rare") == ["rare word"]
    finally:
        sa.event.remove(runtime.read_engine.sync_engine, "before_cursor_execute", record)

    [(statement, parameters)] = statements
    async with runtime.read_engine.connect() as connection:
        plan = (
            await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ).all()
    steps = [row[-1] for row in plan]
    assert steps[0].startswith("SCAN conversation_messages_fts VIRTUAL TABLE")


async def test_result_has_escaped_snippet(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "<script>alert(1)</script> pricing question")

    [item] = (await _search(client, staff, "pricing"))["items"]

    assert item["snippet"] == (
        "&lt;script&gt;alert(1)&lt;/script&gt; <mark>pricing</mark> question"
    )
    assert item["kind"] == "message"
    assert item["seq"] == 1


async def test_hostile_queries_never_fail(client: httpx.AsyncClient) -> None:
    staff = await owner(client)
    cid = await _create(client, staff)
    await _message(client, staff, cid, "hello world, body text")

    for query in HOSTILE_QUERIES:
        result = await _search(client, staff, query)
        assert isinstance(result["items"], list), repr(query[:50])
    assert await _found(client, staff, "NEAR(hello world)") == []
    assert await _found(client, staff, "body:hello") == ["hello world, body text"]
    assert await _found(client, staff, '"hello') == ["hello world, body text"]
    assert await _found(client, staff, "hello*") == ["hello world, body text"]
    assert await _found(client, staff, "hello\x00world") == ["hello world, body text"]


@pytest.fixture
async def seeded(client: httpx.AsyncClient) -> Staff:
    """A workspace whose messages contain markup, operators and non-Latin text."""
    staff = await owner(client)
    cid = await _create(client, staff)
    for text in (
        '<b>bold</b> & "quoted" text AND more',
        "NEAR(one two) body:field ^caret *star",
        "Ünïcödé ταχύτητα скорость 速度 😀",
        "plain words here",
    ):
        await _message(client, staff, cid, text)
    return staff


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=st.text(max_size=300))
async def test_any_text_is_a_valid_query(
    client: httpx.AsyncClient, seeded: Staff, query: str
) -> None:
    response = await client.get(SEARCH, params={"q": query}, headers=seeded.headers)

    assert response.status_code == 200, f"{query!r}: {response.text}"
    items = response.json()["items"]
    tokens = query_tokens(query)
    if not tokens:
        assert items == []
    for item in items:
        markup_free = item["snippet"].replace("<mark>", "").replace("</mark>", "")
        assert "<" not in markup_free, item["snippet"]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    query=st.text(alphabet=st.sampled_from(list('"*^:()-+&|!<> \x00ANDORNTEahwxyz😀')), max_size=40)
)
async def test_operator_soup_is_a_valid_query(
    client: httpx.AsyncClient, seeded: Staff, query: str
) -> None:
    response = await client.get(SEARCH, params={"q": query}, headers=seeded.headers)

    assert response.status_code == 200, f"{query!r}: {response.text}"


async def test_search_needs_agent_and_scopes_ids(client: httpx.AsyncClient) -> None:
    response = await client.get(SEARCH, params={"q": "x"})
    assert response.status_code == 401
    staff = await owner(client)
    found = await _found(client, staff, "x", conversation_id=str(uuid.uuid4()))
    assert found == []
