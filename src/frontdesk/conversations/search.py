"""Full-text search over message bodies, on SQLite FTS5 and on PostgreSQL text search.

SQLite keeps a separate FTS5 table, ``conversation_messages_fts``, that triggers update in
the same transaction as the message (insert, edit, delete). PostgreSQL needs no copy: a GIN
index on ``to_tsvector('simple', body)`` serves the query. The schemas come from the
migrations 0002_message_search and 0003_message_search_triggers.

A search query is never passed to the database's query syntax as written. On SQLite the
MATCH expression is built from the terms of the query as the FTS5 tokenizer reads them,
each quoted as an FTS5 string, so operators (AND, OR, NOT, NEAR), ``*``, ``^``, column
filters and unbalanced quotes are plain words or separators. PostgreSQL parses the text
with ``plainto_tsquery``, which ignores every operator. Both require every word of the query to occur in the message.
"""

from __future__ import annotations

import functools
import html
import re
import sqlite3
import threading
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from frontdesk.conversations.models import Conversation, ConversationMessage
from frontdesk.core.db import dialect_name
from frontdesk.core.pagination import fetch_newest_first
from frontdesk.core.uow import UnitOfWork

FTS_TABLE_NAME = "conversation_messages_fts"
# The FTS5 table and the shadow tables SQLite creates for it; they are not models, so schema
# comparisons must leave them out.
FTS_SHADOW_SUFFIXES = ("", "_data", "_idx", "_content", "_docsize", "_config")
SEARCH_INDEX_NAME = "ix_conversation_messages_body_search"

# The FTS5 table, described for SQLAlchemy statements only: the migration creates it.
# ``message_id`` is stored the way sa.Uuid stores ids on SQLite (32 hex digits), so it
# compares with conversation_messages.id.
fts_table = sa.Table(
    FTS_TABLE_NAME,
    sa.MetaData(),
    sa.Column("message_id", sa.Uuid),
    sa.Column("body", sa.Text),
)

# Words searched for at most on SQLite; words past this count are dropped, which can only
# widen the result. FTS5 of SQLite 3.40 runs a query of 3,000 quoted words, so the limit only
# bounds the cost of one query.
MAX_QUERY_TOKENS = 64
# On SQLite, a query that matches at most this many messages reads its matches from the
# FTS5 table first, and one that matches more walks the workspace's messages newest first.
# In the benchmark's million messages, starting from FTS5 was faster on average for queries
# with fewer than 10,000 matches, and walking faster for those with more.
MAX_JOINED_MATCHES = 10_000
# Words of context on each side of the first match in a snippet.
SNIPPET_CONTEXT_WORDS = 12

_WORD = re.compile(r"[^\W_]+")


def is_search_schema_object(name: str | None) -> bool:
    """Tell whether a table or index name belongs to the search schema of migration 0002."""
    if name is None:
        return False
    if name == SEARCH_INDEX_NAME:
        return True
    return any(name == FTS_TABLE_NAME + suffix for suffix in FTS_SHADOW_SUFFIXES)


def query_tokens(text: str) -> list[str]:
    """Extract the distinct words of a search query, lower-cased, in order.

    A word is a run of letters and digits, as FTS5's unicode61 tokenizer sees it; every
    other character separates words.
    """
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        token = match.group().lower()
        if token not in tokens:
            tokens.append(token)
        if len(tokens) == MAX_QUERY_TOKENS:
            break
    return tokens


# The FTS5 table's tokenizer, as migration 0002 creates it.
FTS_TOKENIZE = "unicode61 remove_diacritics 2"


class _Fts5Tokenizer:
    """A tokenizer that splits text into the terms the FTS5 table indexes.

    FTS5's unicode61 tokenizer and Python split and fold words with different Unicode data.
    Python lower-cases letters of scripts that unicode61 keeps as written, such as Adlam
    (Unicode 9.0), and unicode61 keeps private-use characters inside a word where Python
    splits it. A query term built in Python could then match no indexed term, and the whole
    query would find nothing. The terms therefore come from an in-memory FTS5 table with the
    same tokenizer, in the SQLite library that the database connections use.
    """

    def __init__(self) -> None:
        self._connection = sqlite3.connect(":memory:", check_same_thread=False)
        self._connection.execute(
            f"CREATE VIRTUAL TABLE query USING fts5(body, tokenize = '{FTS_TOKENIZE}')"
        )
        self._connection.execute(
            "CREATE VIRTUAL TABLE query_terms USING fts5vocab(query, instance)"
        )
        self._lock = threading.Lock()

    def terms(self, text: str) -> list[str]:
        """Return the distinct terms of ``text`` in order, folded as the index stores them."""
        with self._lock:
            self._connection.execute("BEGIN")
            try:
                self._connection.execute("INSERT INTO query (body) VALUES (?)", (text,))
                rows = self._connection.execute(
                    "SELECT term FROM query_terms ORDER BY offset"
                ).fetchall()
            finally:
                self._connection.execute("ROLLBACK")
        return list(dict.fromkeys(term for (term,) in rows))


@functools.cache
def _fts5_tokenizer() -> _Fts5Tokenizer:
    return _Fts5Tokenizer()


def fts5_terms(text: str) -> list[str]:
    """Return the first MAX_QUERY_TOKENS distinct terms of ``text``, split and folded by
    the FTS5 tokenizer."""
    return _fts5_tokenizer().terms(text)[:MAX_QUERY_TOKENS]


def fts5_match_expression(tokens: list[str]) -> str:
    """Build an FTS5 MATCH expression that requires every token, each as a quoted string.

    The tokens contain no double quote (they are letters and digits), but one would be
    escaped by doubling it, as FTS5 strings require.
    """
    return " ".join('"' + token.replace('"', '""') + '"' for token in tokens)


def _fold(word: str) -> str:
    """Fold a word for snippet highlighting: case and diacritics removed, as unicode61 does."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def snippet(body: str, tokens: list[str]) -> str:
    """Cut the body around its first matching word, HTML-escaped, matches in ``<mark>``.

    The result is safe to insert as HTML: only the ``<mark>`` tags are markup. Words match
    whole, ignoring case and diacritics. A body without a matching word (PostgreSQL may
    match forms such as email addresses differently) gives its beginning, unmarked.
    """
    wanted = {_fold(token) for token in tokens}
    words = list(_WORD.finditer(body))
    if not words:
        return html.escape(body[:200])
    hits = [index for index, word in enumerate(words) if _fold(word.group()) in wanted]
    first = hits[0] if hits else 0
    start_word = max(first - SNIPPET_CONTEXT_WORDS, 0)
    end_word = min(first + SNIPPET_CONTEXT_WORDS, len(words) - 1)
    start = 0 if start_word == 0 else words[start_word].start()
    end = len(body) if end_word == len(words) - 1 else words[end_word].end()

    pieces: list[str] = ["…" if start > 0 else ""]
    position = start
    for index in hits:
        if not start_word <= index <= end_word:
            continue
        word = words[index]
        pieces.append(html.escape(body[position : word.start()]))
        pieces.append(f"<mark>{html.escape(word.group())}</mark>")
        position = word.end()
    pieces.append(html.escape(body[position:end]))
    if end < len(body):
        pieces.append("…")
    return "".join(pieces)


async def prune_index(uow: UnitOfWork) -> int:
    """Delete full-text rows whose message is gone, for example by a workspace deletion.

    Those rows are never returned, because a search joins the messages, but they still hold
    the text. Returns how many rows were deleted.
    """
    if dialect_name(uow.session) != "sqlite":
        return 0
    result = await uow.session.execute(
        sa.delete(fts_table).where(fts_table.c.message_id.not_in(sa.select(ConversationMessage.id)))
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Searching


@dataclass(frozen=True)
class SearchFilters:
    conversation_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    channel: str | None = None
    # Messages created at or after ``created_from`` and before ``created_to``.
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class SearchHit:
    message: ConversationMessage
    # HTML-escaped text around the first match, with matches in <mark>.
    snippet: str


@dataclass(frozen=True)
class SearchPage:
    items: list[SearchHit]
    next_cursor: str | None


async def _matching_messages(uow: UnitOfWork, text: str) -> sa.Select[ConversationMessage] | None:
    """Select the messages that contain every word of ``text``, or return None when none does."""
    if dialect_name(uow.session) == "sqlite":
        return await _fts5_matching_messages(uow, text)
    config: sa.ColumnElement[Any] = sa.literal_column("'simple'::regconfig")
    # The same expression as the GIN index of migration 0002, so the planner can use it.
    vector = sa.func.to_tsvector(config, ConversationMessage.body)
    # PostgreSQL text cannot hold NUL; every other character is left to its parser.
    query = sa.func.plainto_tsquery(config, text.replace("\x00", " "))
    return sa.select(ConversationMessage).where(vector.op("@@")(query))


async def _fts5_matching_messages(
    uow: UnitOfWork, text: str
) -> sa.Select[ConversationMessage] | None:
    """Select the messages that contain every term of ``text`` on SQLite, in the plan that
    suits the number of matches. A first statement counts them, up to MAX_JOINED_MATCHES + 1.

    Up to MAX_JOINED_MATCHES, the statement starts from the FTS5 table and looks each match
    up by id, so its cost follows the number of matches. With more, it walks the
    workspace's messages newest first (``id IN (SELECT message_id ... MATCH ...)``), which
    finds a page early among dense matches but costs a scan of every message of the
    workspace for a rare word.
    """
    terms = fts5_terms(text)
    if not terms:
        return None
    match = fts_table.c.body.match(fts5_match_expression(terms))
    capped = sa.select(sa.literal(1)).select_from(fts_table).where(match)
    counted = sa.select(sa.func.count()).select_from(
        capped.limit(MAX_JOINED_MATCHES + 1).subquery()
    )
    matches = await uow.session.scalar(counted) or 0
    if matches == 0:
        return None
    if matches <= MAX_JOINED_MATCHES:
        return (
            sa.select(ConversationMessage)
            .select_from(fts_table)
            .join(ConversationMessage, ConversationMessage.id == fts_table.c.message_id)
            .where(match)
        )
    return sa.select(ConversationMessage).where(
        ConversationMessage.id.in_(sa.select(fts_table.c.message_id).where(match))
    )


async def search_messages(
    uow: UnitOfWork,
    *,
    workspace_id: uuid.UUID,
    text: str,
    filters: SearchFilters,
    cursor: str | None,
    limit: int,
) -> SearchPage:
    """Find the workspace's messages and notes that contain every word of ``text``.

    Newest first by (created_at, id). Deleted messages are not found. A query without a
    single word finds nothing.
    """
    tokens = query_tokens(text)
    if not tokens:
        return SearchPage([], None)
    matching = await _matching_messages(uow, text)
    if matching is None:
        return SearchPage([], None)
    statement = matching.join(
        Conversation, Conversation.id == ConversationMessage.conversation_id
    ).where(
        ConversationMessage.workspace_id == workspace_id,
        Conversation.workspace_id == workspace_id,
        ConversationMessage.deleted_at.is_(None),
        ConversationMessage.kind.in_(("message", "note")),
    )
    if filters.conversation_id is not None:
        statement = statement.where(ConversationMessage.conversation_id == filters.conversation_id)
    if filters.contact_id is not None:
        statement = statement.where(Conversation.contact_id == filters.contact_id)
    if filters.channel is not None:
        statement = statement.where(Conversation.channel == filters.channel)
    if filters.created_from is not None:
        statement = statement.where(ConversationMessage.created_at >= filters.created_from)
    if filters.created_to is not None:
        statement = statement.where(ConversationMessage.created_at < filters.created_to)
    rows, next_cursor = await fetch_newest_first(
        uow.session, statement, ConversationMessage, cursor=cursor, limit=limit
    )
    return SearchPage([SearchHit(row, snippet(row.body, tokens)) for row in rows], next_cursor)
