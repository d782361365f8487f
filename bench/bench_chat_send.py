"""Chat messages stored and delivered per second, against bare inserts of the same rows.

Both ways write ``--count`` messages to the same database, ``--concurrency`` at a time:

- Frontdesk: ``uvicorn frontdesk.app:app_from_env`` in its own process. Each of the
  ``--concurrency`` senders is an agent with its own workspace and conversation that posts
  a message with ``POST /api/v1/conversations/{id}/messages`` as soon as the previous one
  returned 201. Another agent of the same workspace, on a WebSocket subscribed to the
  conversation, receives the ``conversation.message.created`` events. The clock runs from
  the first send until the receivers hold every message's event. Senders (a minimal
  HTTP/1.1 keep-alive client, ``chat_support.KeepAliveConnection``) and receivers
  (``websockets``) run in processes of their own. The REST route is used rather
  than the WebSocket ``send`` frame because the server limits send frames per connection
  (a burst of 10, then one a second), as it should for a person typing.
- Baseline: in this process, with the same SQLAlchemy async engine settings, one
  transaction per message that INSERTs the rows a message adds. These are the
  conversation_messages row (the same columns), its full-text row on SQLite
  (conversation_messages_fts, which the schema's trigger adds for both sides) and its
  events row (the same columns, with the message and conversation as event data). The baseline does nothing else: no sequence number taken
  from the conversation, no read position, no event sequencing, no delivery.

The result is Frontdesk's rate over the baseline's. Both rates move by a sixth or more
from one run to the next on a shared machine, so the script runs ``--rounds`` rounds of both
ways, each round on a new SQLite database (or with new workspaces in ``--database-url``),
and reports the round with the median ratio beside every round's figures.

    python bench/bench_chat_send.py                   # 3 rounds of 2,000 messages, SQLite
    python bench/bench_chat_send.py --smoke           # 1 round of 20, to check that it runs
    python bench/bench_chat_send.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chat_support import (
    MESSAGE_WORDS,
    LoadResult,
    SeededWorkspace,
    frontdesk_environment,
    frontdesk_has_message_route,
    frontdesk_receivers,
    frontdesk_senders,
    machine_summary,
    new_secret_key,
    percentile,
    print_options,
    run_load,
    seed_staff,
    server_process,
    stamped_body,
    use_cross_process_broker,
)

from frontdesk.conversations.formatting import render_markdown
from frontdesk.conversations.models import ConversationMessage
from frontdesk.core.db import create_engine
from frontdesk.core.ids import uuid7
from frontdesk.core.migrate import upgrade
from frontdesk.core.models import Event


def bench_frontdesk(
    args: argparse.Namespace, scratch: Path, database_url: str, secret_key: str, mode: str
) -> tuple[LoadResult, str]:
    data_dir = scratch / "data"
    data_dir.mkdir()
    env = frontdesk_environment(database_url, data_dir, secret_key)
    use_cross_process_broker(env, mode, args.redis_url)
    seeded = asyncio.run(
        seed_staff(
            database_url, secret_key, workspaces=args.concurrency, members=2, conversations=1
        )
    )
    with server_process("frontdesk.app:app_from_env", env, scratch / "frontdesk.log") as server:
        url = f"{server.ws_base}/api/v1/realtime"
        sender, sender_args = frontdesk_senders(seeded, url, mode, env, args.concurrency)
        result = run_load(
            frontdesk_receivers(seeded, url, range(1, 2)),
            sender,
            (*sender_args, args.count // args.concurrency, 0.0),
            expected_deliveries=args.count // args.concurrency * args.concurrency,
            receiver_processes=1,
            drain_seconds=60,
        )
        output = server.output()
    return result, output


def event_data(row: dict[str, Any], conversation_id: uuid.UUID, now: datetime) -> dict[str, Any]:
    """Build the event data of a new message: the message and conversation fields that the
    service sends."""
    stamp = now.isoformat()
    message = {
        "id": str(row["id"]),
        "conversation_id": str(conversation_id),
        "seq": row["seq"],
        "kind": "message",
        "author": {"type": "member", "id": row["author_key"], "name": "Agent 0.0"},
        "body": row["body"],
        "body_html": row["body_html"],
        "attachments": [],
        "data": {},
        "client_message_id": row["client_message_id"],
        "created_at": stamp,
        "edited_at": None,
        "deleted_at": None,
    }
    conversation = {
        "id": str(conversation_id),
        "channel": "chat",
        "status": "open",
        "snoozed_until": None,
        "contact_id": None,
        "enquiry_id": None,
        "visitor_id": None,
        "assignee_id": None,
        "subject": "Bench conversation",
        "last_seq": row["seq"],
        "last_message_at": stamp,
        "created_at": stamp,
        "updated_at": stamp,
    }
    return {"message": message, "conversation": conversation}


async def bench_bare_inserts(
    database_url: str, seeded: list[SeededWorkspace], count: int, concurrency: int
) -> float:
    """Insert the rows of ``count`` messages, one transaction each; returns messages per second."""
    engine = create_engine(database_url)
    messages = ConversationMessage.__table__
    events = Event.__table__

    async def writer(number: int, workspace: SeededWorkspace, messages_to_write: int) -> None:
        conversation_id = workspace.conversation_ids[0]
        user_id = workspace.user_ids[0]
        for index in range(messages_to_write):
            now = datetime.now(UTC)
            body = stamped_body(MESSAGE_WORDS)
            row = {
                "id": uuid7(),
                "workspace_id": workspace.workspace_id,
                "conversation_id": conversation_id,
                "seq": index + 1,
                "kind": "message",
                "author_type": "member",
                "author_key": str(user_id),
                "author_user_id": user_id,
                "body": body,
                "body_html": render_markdown(body),
                "attachments": [],
                "data": {"author_name": "Agent 0.0"},
                "client_message_id": f"b{number}-{index}",
                "created_at": now,
            }
            async with engine.begin() as connection:
                await connection.execute(messages.insert().values(**row))
                await connection.execute(
                    events.insert().values(
                        name="conversation.message.created",
                        data=event_data(row, conversation_id, now),
                        workspace_id=workspace.workspace_id,
                        audience="staff",
                        conversation_id=conversation_id,
                        created_at=now,
                    )
                )

    per_writer = count // concurrency
    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(writer(number, workspace, per_writer) for number, workspace in enumerate(seeded))
        )
        elapsed = time.perf_counter() - started
    finally:
        await engine.dispose()
    return per_writer * concurrency / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="messages per way (default 2000)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="senders or writers at once (default 4)"
    )
    parser.add_argument(
        "--frontdesk-send",
        choices=("auto", "rest", "service"),
        default="auto",
        help="how Frontdesk's senders send: rest (POST to the staff API), service (post_message "
        "in the sender process, events through the broker) or auto (rest when the API has the "
        "route; default)",
    )
    parser.add_argument(
        "--database-url",
        help="an empty, migrated or new database (default: a new SQLite file in a temporary folder)",
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="broker for --frontdesk-send service on SQLite (default redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of both ways, each on a new database; the median round's ratio is the "
        "result (default 3)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="one round of 20 messages, to check that it runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.count = 20
        args.rounds = 1
    if args.rounds < 1:
        parser.error("--rounds must be 1 or more")
    mode = args.frontdesk_send
    if mode == "auto":
        mode = "rest" if frontdesk_has_message_route() else "service"
    print_options(args)
    print(machine_summary())

    backend = (
        "PostgreSQL"
        if args.database_url and args.database_url.startswith("postgresql")
        else "SQLite"
    )
    sender_route = (
        "POST /api/v1/conversations/{id}/messages"
        if mode == "rest"
        else "post_message in the sender process"
    )
    print(
        f"chat send path: {args.count // args.concurrency * args.concurrency} messages per way "
        f"and round, {args.concurrency} at a time, {backend}; Frontdesk's senders use {sender_route}"
    )
    rounds = [run_round(args, mode, number) for number in range(1, args.rounds + 1)]
    ratios = [frontdesk / baseline for frontdesk, baseline in rounds]
    middle = ratios.index(statistics.median_low(ratios))
    frontdesk_rate, baseline_rate = rounds[middle]
    print(
        f"median round ({middle + 1} of {len(rounds)}): Frontdesk {frontdesk_rate:.1f}, "
        f"bare {baseline_rate:.1f} messages/s"
    )
    print(
        f"  ratio Frontdesk / bare: {ratios[middle]:.2f} (target 0.5 or more; rounds "
        + ", ".join(f"{ratio:.2f}" for ratio in ratios)
        + ")"
    )


def run_round(args: argparse.Namespace, mode: str, number: int) -> tuple[float, float]:
    """Run both ways once on a new database (or new workspaces in ``--database-url``) and
    print the round's figures; returns Frontdesk's rate and the baseline's."""
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        database_url = args.database_url or f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        upgrade(database_url)
        secret_key = new_secret_key()
        # Frontdesk first: its server sequences every event without a position, so the
        # baseline's event rows must come after the server stopped.
        frontdesk, server_output = bench_frontdesk(args, scratch, database_url, secret_key, mode)
        baseline_workspaces = asyncio.run(
            seed_staff(
                database_url, secret_key, workspaces=args.concurrency, members=1, conversations=1
            )
        )
        baseline = asyncio.run(
            bench_bare_inserts(database_url, baseline_workspaces, args.count, args.concurrency)
        )

    delivered = len(frontdesk.latencies_ms)
    if delivered < frontdesk.sent or frontdesk.closed_early:
        print(server_output[-3000:])
        raise SystemExit(
            f"only {delivered} of {frontdesk.sent} Frontdesk messages were delivered "
            f"({frontdesk.closed_early} connections closed early)"
        )
    frontdesk_rate = delivered / frontdesk.seconds
    print(f"round {number}:")
    print(
        f"  Frontdesk stored and delivered  {frontdesk_rate:8.1f} messages/s   "
        f"(ack p50 {percentile(frontdesk.ack_ms, 0.5):.1f} ms, delivery p50 "
        f"{percentile(frontdesk.latencies_ms, 0.5):.1f} ms, p95 "
        f"{percentile(frontdesk.latencies_ms, 0.95):.1f} ms)"
    )
    print(f"  bare INSERTs of the same rows   {baseline:8.1f} messages/s")
    print(f"  ratio {frontdesk_rate / baseline:.2f}", flush=True)
    return frontdesk_rate, baseline


if __name__ == "__main__":
    main()
