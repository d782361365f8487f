"""Message search latency: Frontdesk's search function against the same full-text SQL, in one run.

The database gets ``--count`` messages in one workspace, spread over ``--conversations``
conversations. Bodies are 5 to 30 words drawn from a fixed vocabulary of pseudo-words with a
Zipf-like distribution (the word of rank r has weight 1 / r^1.07), from a seeded generator,
so every run stores the same text. The messages go in with bulk statements (executemany on
SQLite, COPY on PostgreSQL) after migration 0001, and then migration 0002 builds the
full-text index exactly as it does on an existing database: the FTS5 table filled by one
INSERT ... SELECT on SQLite, the GIN expression index on PostgreSQL. On PostgreSQL the
script then runs ANALYZE, as autovacuum would soon after such a load.

Then ``--queries`` queries of one or two words (each word of uniformly random rank, so
rare and common words both occur) run two ways, one after another on the same database:

- Frontdesk: ``frontdesk.conversations.search.search_messages`` in this process, in a
  unit of work, as the ``GET /api/v1/conversations/search`` route calls it (the route adds
  authentication and the JSON response around it), for the first page of ``--limit``.
- SQL: the same full-text condition written by hand (FTS5 MATCH of the quoted words, or
  ``to_tsvector(...) @@ plainto_tsquery(...)``), the workspace, newest first, ``--limit`` + 1
  rows, through the same SQLAlchemy async engine and driver. On SQLite it takes the same
  two steps as Frontdesk: it counts the query's matches in the FTS5 table, and starts from
  that table when they number MAX_JOINED_MATCHES or fewer.

Both must return the same messages for every query; the p95 ratio is the result.

    python bench/bench_chat_search.py                 # 1,000,000 messages, 1,000 queries
    python bench/bench_chat_search.py --smoke         # 2,000 messages, 50 queries
    python bench/bench_chat_search.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import os
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from chat_support import (
    machine_summary,
    new_secret_key,
    percentile,
    print_options,
    seed_staff,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from frontdesk.config import Settings
from frontdesk.conversations.search import (
    MAX_JOINED_MATCHES,
    SearchFilters,
    fts5_match_expression,
    query_tokens,
    search_messages,
)
from frontdesk.core.logging import configure_logging
from frontdesk.core.migrate import upgrade
from frontdesk.core.uow import unit_of_work
from frontdesk.realtime.brokers import asyncpg_dsn
from frontdesk.runtime import build_runtime

SEED = 20261205
VOCABULARY_SIZE = 5000
ZIPF_EXPONENT = 1.07
SYLLABLES = [
    consonant + vowel
    for consonant in ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z")
    for vowel in ("a", "e", "i", "o", "u")
]
COLUMNS = (
    "id",
    "workspace_id",
    "conversation_id",
    "seq",
    "kind",
    "author_type",
    "author_key",
    "author_user_id",
    "body",
    "body_html",
    "attachments",
    "data",
    "client_message_id",
    "edited_at",
    "deleted_at",
    "created_at",
)


def vocabulary(rng: random.Random) -> list[str]:
    """VOCABULARY_SIZE distinct pseudo-words of two to four syllables, in rank order."""
    words: list[str] = []
    seen: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def message_rows(
    count: int,
    workspace_id: uuid.UUID,
    conversation_ids: list[uuid.UUID],
    user_id: uuid.UUID,
    words: list[str],
    rng: random.Random,
) -> Iterator[tuple[Any, ...]]:
    """Yield message rows in COLUMNS order; created_at grows by 30 s per message."""
    weights = list(
        itertools.accumulate(1 / rank**ZIPF_EXPONENT for rank in range(1, len(words) + 1))
    )
    start = datetime(2025, 1, 1, tzinfo=UTC)
    conversations = len(conversation_ids)
    author_key = str(user_id)
    for index in range(count):
        body = " ".join(rng.choices(words, cum_weights=weights, k=rng.randint(5, 30)))
        yield (
            uuid.UUID(int=(index + 1) << 64 | rng.getrandbits(64)),
            workspace_id,
            conversation_ids[index % conversations],
            index // conversations + 1,
            "message",
            "member",
            author_key,
            user_id,
            body,
            f"<p>{body}</p>",
            "[]",
            '{"author_name": "Agent"}',
            None,
            None,
            None,
            start + timedelta(seconds=30 * index),
        )


def insert_sqlite(path: str, rows: Iterator[tuple[Any, ...]]) -> None:
    """Insert with the standard sqlite3 module, in the storage formats SQLAlchemy uses on SQLite:
    ids as 32 hex digits, times as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC, JSON as text.
    """

    def stored(row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for position in (0, 1, 2, 7):
            values[position] = values[position].hex
        values[15] = values[15].strftime("%Y-%m-%d %H:%M:%S.%f")
        return tuple(values)

    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        statement = (
            f"INSERT INTO conversation_messages ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in COLUMNS)})"
        )
        while batch := [stored(row) for row in itertools.islice(rows, 20_000)]:
            with connection:
                connection.executemany(statement, batch)
    finally:
        connection.close()


async def insert_postgres(database_url: str, rows: Iterator[tuple[Any, ...]]) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        while batch := list(itertools.islice(rows, 50_000)):
            await connection.copy_records_to_table(
                "conversation_messages", records=batch, columns=list(COLUMNS)
            )
    finally:
        await connection.close()


async def analyze_postgres(database_url: str) -> None:
    """Collect planner statistics, as autovacuum does within a minute of a bulk load.

    Without them the planner may scan every message instead of using the GIN index.
    """
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await connection.execute("ANALYZE conversation_messages, conversations")
    finally:
        await connection.close()


def queries(words: list[str], count: int, rng: random.Random) -> list[str]:
    return [" ".join(rng.sample(words, rng.choice((1, 2)))) for _ in range(count)]


def page_statement(condition: str) -> sa.TextClause:
    return sa.text(
        f"SELECT {', '.join(COLUMNS)} FROM conversation_messages "
        f"WHERE workspace_id = :workspace_id AND {condition} "
        "ORDER BY created_at DESC, id DESC LIMIT :limit"
    )


_FTS5_SUBQUERY = (
    "id IN (SELECT message_id FROM conversation_messages_fts "
    "WHERE conversation_messages_fts MATCH :match)"
)


async def direct_query(
    connection: AsyncConnection, dialect: str, text: str, workspace: Any, limit: int
) -> list[Any]:
    """Run the full-text query by hand: matching messages of the workspace, newest first.

    On SQLite it takes the same two steps as Frontdesk. It counts the matches in the FTS5
    table, up to one more than MAX_JOINED_MATCHES. Up to that limit the page statement
    starts from the FTS5 table, and above it walks the workspace's messages.
    """
    params: dict[str, Any] = {"workspace_id": workspace, "limit": limit + 1}
    if dialect != "sqlite":
        params["match"] = text
        condition = (
            "to_tsvector('simple'::regconfig, body) @@ plainto_tsquery('simple'::regconfig, :match)"
        )
        return list((await connection.execute(page_statement(condition), params)).all())
    params["match"] = fts5_match_expression(query_tokens(text))
    matches = (
        await connection.execute(
            sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM conversation_messages_fts "
                "WHERE conversation_messages_fts MATCH :match LIMIT :cap)"
            ),
            {"match": params["match"], "cap": MAX_JOINED_MATCHES + 1},
        )
    ).scalar_one()
    if matches == 0:
        return []
    if matches > MAX_JOINED_MATCHES:
        return list((await connection.execute(page_statement(_FTS5_SUBQUERY), params)).all())
    statement = sa.text(
        f"SELECT {', '.join('m.' + column for column in COLUMNS)} "
        "FROM conversation_messages_fts JOIN conversation_messages AS m "
        "ON m.id = conversation_messages_fts.message_id "
        "WHERE conversation_messages_fts MATCH :match AND m.workspace_id = :workspace_id "
        "ORDER BY m.created_at DESC, m.id DESC LIMIT :limit"
    )
    return list((await connection.execute(statement, params)).all())


async def subquery_only(
    connection: AsyncConnection, dialect: str, text: str, workspace: Any, limit: int
) -> list[Any]:
    """Run the SQLite query as one statement with the FTS5 subquery, which Frontdesk ran
    for every query before it counted the matches. For reference only."""
    params = {
        "workspace_id": workspace,
        "limit": limit + 1,
        "match": fts5_match_expression(query_tokens(text)),
    }
    return list((await connection.execute(page_statement(_FTS5_SUBQUERY), params)).all())


async def run_queries(
    settings: Settings, workspace_id: uuid.UUID, texts: list[str], limit: int
) -> tuple[list[float], list[float], list[float], int]:
    """Time every query both ways, alternating which goes first. On SQLite the one-statement
    form runs after them. Returns the times in ms and the total number of messages found."""
    runtime = build_runtime(settings)
    await runtime.start()
    dialect = "sqlite" if settings.is_sqlite else "postgresql"
    workspace_param = workspace_id.hex if dialect == "sqlite" else workspace_id
    frontdesk_ms: list[float] = []
    direct_ms: list[float] = []
    subquery_ms: list[float] = []
    found = 0

    async def through_frontdesk(text: str) -> list[str]:
        started = time.perf_counter()
        async with unit_of_work(runtime) as uow:
            page = await search_messages(
                uow,
                workspace_id=workspace_id,
                text=text,
                filters=SearchFilters(),
                cursor=None,
                limit=limit,
            )
        frontdesk_ms.append((time.perf_counter() - started) * 1000)
        return [hit.message.id.hex for hit in page.items]

    async def through_sql(query: Any, text: str, times: list[float]) -> list[str]:
        started = time.perf_counter()
        async with runtime.engine.connect() as connection:
            rows = await query(connection, dialect, text, workspace_param, limit)
        times.append((time.perf_counter() - started) * 1000)
        return [(row.id if isinstance(row.id, str) else row.id.hex) for row in rows[:limit]]

    try:
        # A few untimed queries load the index pages and warm the connection pools.
        for text in texts[:5]:
            await through_frontdesk(text)
            await through_sql(direct_query, text, direct_ms)
        frontdesk_ms.clear()
        direct_ms.clear()
        for number, text in enumerate(texts):
            if number % 2:
                ids_frontdesk = await through_frontdesk(text)
                ids_sql = await through_sql(direct_query, text, direct_ms)
            else:
                ids_sql = await through_sql(direct_query, text, direct_ms)
                ids_frontdesk = await through_frontdesk(text)
            if ids_frontdesk != ids_sql:
                raise SystemExit(
                    f"query {text!r}: Frontdesk found {len(ids_frontdesk)} messages, "
                    f"the SQL {len(ids_sql)}, or in another order"
                )
            if dialect == "sqlite":
                ids_subquery = await through_sql(subquery_only, text, subquery_ms)
                if ids_subquery != ids_sql:
                    raise SystemExit(f"query {text!r}: the one-statement form found other messages")
            found += len(ids_sql)
    finally:
        await runtime.close()
    return frontdesk_ms, direct_ms, subquery_ms, found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=1_000_000, help="messages stored (default 1,000,000)"
    )
    parser.add_argument(
        "--conversations",
        type=int,
        default=1000,
        help="conversations they spread over (default 1000)",
    )
    parser.add_argument("--queries", type=int, default=1000, help="queries timed (default 1000)")
    parser.add_argument(
        "--limit", type=int, default=50, help="messages per result page (default 50, the API's)"
    )
    parser.add_argument(
        "--database-url",
        help="an empty database to fill (default: a new SQLite file in a temporary folder)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="2,000 messages and 50 queries, to check that it runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.count, args.conversations, args.queries = 2000, 20, 50
    print_options(args)
    print(machine_summary())

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        database_url = args.database_url or f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        is_sqlite = database_url.startswith("sqlite")
        secret_key = new_secret_key()
        upgrade(database_url, "0001")
        (workspace,) = asyncio.run(
            seed_staff(
                database_url,
                secret_key,
                workspaces=1,
                members=1,
                conversations=args.conversations,
            )
        )
        rng = random.Random(SEED)
        words = vocabulary(rng)
        rows = message_rows(
            args.count,
            workspace.workspace_id,
            workspace.conversation_ids,
            workspace.user_ids[0],
            words,
            rng,
        )
        started = time.perf_counter()
        if is_sqlite:
            insert_sqlite(database_url.split("///", 1)[1], rows)
        else:
            asyncio.run(insert_postgres(database_url, rows))
        inserted = time.perf_counter() - started
        started = time.perf_counter()
        upgrade(database_url)
        if not is_sqlite:
            # SQLite gets no statistics: Frontdesk never runs ANALYZE there.
            asyncio.run(analyze_postgres(database_url))
        indexed = time.perf_counter() - started
        print(
            f"stored {args.count} messages in {inserted:.1f} s; "
            f"migration 0002 built the full-text index in {indexed:.1f} s"
            + ("" if is_sqlite else " (with ANALYZE)")
        )

        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            database_url=database_url,
            data_dir=scratch,
            secret_key=secret_key,
            encryption_keys="b1:" + base64.b64encode(os.urandom(32)).decode(),
            log_level="WARNING",
            log_format="console",
        )
        configure_logging(settings)
        texts = queries(words, args.queries, random.Random(SEED + 1))
        frontdesk_ms, direct_ms, subquery_ms, found = asyncio.run(
            run_queries(settings, workspace.workspace_id, texts, args.limit)
        )

    backend = "SQLite FTS5" if is_sqlite else "PostgreSQL GIN on to_tsvector('simple', body)"
    print(
        f"message search: {args.count} messages in {args.conversations} conversations, "
        f"{args.queries} queries of 1-2 words, first page of {args.limit}, {backend}; "
        f"{found} messages returned in all; Frontdesk through search_messages in-process"
    )
    print("  way            p50 ms   p95 ms   max ms")
    for name, times in (("Frontdesk", frontdesk_ms), ("direct SQL", direct_ms)):
        print(
            f"  {name:12} {percentile(times, 0.5):8.2f} {percentile(times, 0.95):8.2f} "
            f"{max(times):8.2f}"
        )
    ratio = percentile(frontdesk_ms, 0.95) / percentile(direct_ms, 0.95)
    print(f"  ratio of p95 Frontdesk / direct SQL: {ratio:.2f} (target 1.3 or less)")
    if subquery_ms:
        print(
            f"  for reference, one statement with the FTS5 subquery for every query: "
            f"p50 {percentile(subquery_ms, 0.5):.2f} ms, p95 {percentile(subquery_ms, 0.95):.2f} ms"
        )


if __name__ == "__main__":
    main()
