"""Message fan-out latency to connected staff: Frontdesk against a bare broadcast server.

Both sides deliver every message to the same number of WebSocket clients, in one run:

- Frontdesk: ``uvicorn frontdesk.app:app_from_env`` in its own process. Each conversation
  sits in a workspace of its own with ``--per-conversation`` agents, each on one connection
  that authenticates (and subscribes to the conversation when the protocol has the
  ``subscribe`` frame). A message travels the whole product path: the send, the stored
  message and its event, event sequencing, the hand-over of the event to the gateway (or,
  with a cross-process broker, its signal and the gateway's read of the events table) and
  each connection's send queue.
- Baseline: ``uvicorn chat_support:bare_app``, a Starlette WebSocket route on the same
  server and WebSocket library that keeps rooms in memory and, for each ``send`` frame,
  broadcasts an event frame with the same fields as Frontdesk's to the room.

The clients use the ``websockets`` library: the receivers in ``--receiver-processes``
processes of their own and the senders in another. Each of ``--senders`` senders writes to
its share of the conversations at ``--rate`` messages per second, waiting for the ``sent``
reply before the next message. Every message body starts with its send time on the
machine's monotonic clock, and each receiver records arrival minus send time for every
delivery: the p50 and p95 of those are the figures, and the ratio of the p95s is the result.

    python bench/bench_chat_fanout.py                 # 1,000 clients in 200 conversations
    python bench/bench_chat_fanout.py --smoke         # a few clients, to check that it runs
    python bench/bench_chat_fanout.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from chat_support import (
    ClientPlan,
    LoadResult,
    SenderTarget,
    bare_environment,
    frontdesk_environment,
    frontdesk_receivers,
    frontdesk_send_mode,
    frontdesk_senders,
    machine_summary,
    new_secret_key,
    percentile,
    print_options,
    raise_open_file_limit,
    run_load,
    seed_staff,
    sender_process,
    server_process,
    use_cross_process_broker,
)

from frontdesk.core.migrate import upgrade


def share(items: list[Any], parts: int) -> list[list[Any]]:
    return [items[index::parts] for index in range(parts)]


def bench_bare(args: argparse.Namespace, scratch: Path) -> LoadResult:
    rooms = [str(uuid.uuid4()) for _ in range(args.conversations)]
    with server_process(
        "chat_support:bare_app", bare_environment(), scratch / "bare.log"
    ) as server:
        url = f"{server.ws_base}/ws"
        receivers = [
            ClientPlan(url, (({"type": "join", "room": room}, "joined"),))
            for _ in range(args.per_conversation)
            for room in rooms
        ]
        targets = [
            SenderTarget(ClientPlan(url, ()), {"type": "send", "room": room}) for room in rooms
        ]
        return run_load(
            receivers,
            sender_process,
            (share(targets, args.senders), args.messages, args.rate),
            expected_deliveries=args.senders * args.messages * args.per_conversation,
            receiver_processes=args.receiver_processes,
        )


def bench_frontdesk(
    args: argparse.Namespace, scratch: Path, database_url: str, mode: str
) -> LoadResult:
    data_dir = scratch / "data"
    data_dir.mkdir()
    upgrade(database_url)
    secret_key = new_secret_key()
    env = frontdesk_environment(database_url, data_dir, secret_key)
    use_cross_process_broker(env, mode, args.redis_url)
    # One workspace per conversation, so that each message goes to that conversation's
    # agents only: a staff connection receives every staff event of its workspace. Member 0
    # of each workspace sends; the others receive.
    seeded = asyncio.run(
        seed_staff(
            database_url,
            secret_key,
            workspaces=args.conversations,
            members=args.per_conversation + 1,
            conversations=1,
        )
    )
    with server_process("frontdesk.app:app_from_env", env, scratch / "frontdesk.log") as server:
        url = f"{server.ws_base}/api/v1/realtime"
        receivers = frontdesk_receivers(seeded, url, range(1, args.per_conversation + 1))
        sender, sender_args = frontdesk_senders(seeded, url, mode, env, args.senders)
        result = run_load(
            receivers,
            sender,
            (*sender_args, args.messages, args.rate),
            expected_deliveries=args.senders * args.messages * args.per_conversation,
            receiver_processes=args.receiver_processes,
        )
        if result.closed_early:
            print(f"warning: the server closed {result.closed_early} Frontdesk connections early")
            print(server.output()[-3000:])
    return result


def describe(name: str, result: LoadResult, expected: int) -> str:
    latencies = result.latencies_ms
    after = result.after_created_ms
    average_frame = result.frame_bytes / result.frames if result.frames else 0
    return (
        f"  {name:10} {len(latencies):>6}/{expected:<6} {percentile(latencies, 0.5):8.1f} "
        f"{percentile(latencies, 0.95):8.1f} {max(latencies):8.1f} "
        f"{percentile(after, 0.5):8.1f} {percentile(after, 0.95):8.1f} {average_frame:8.0f} "
        f"{percentile(result.ack_ms, 0.5):8.1f} {result.sent / result.seconds:7.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--conversations", type=int, default=200, help="conversations (default 200)"
    )
    parser.add_argument(
        "--per-conversation",
        type=int,
        default=5,
        help="connected receiving clients per conversation (default 5)",
    )
    parser.add_argument("--senders", type=int, default=4, help="concurrent senders (default 4)")
    parser.add_argument(
        "--messages", type=int, default=250, help="messages per sender (default 250)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="messages per second per sender; 0 sends each as soon as the last was acknowledged "
        "(default 10)",
    )
    parser.add_argument(
        "--receiver-processes",
        type=int,
        default=1,
        help="processes that hold the receiving clients (default 1)",
    )
    parser.add_argument(
        "--frontdesk-send",
        choices=("auto", "ws", "service"),
        default="auto",
        help="how Frontdesk's senders send: ws (the send frame), service (post_message in the "
        "sender process, events through the broker) or auto (ws when the protocol has the "
        "send frame; default)",
    )
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="broker for --frontdesk-send service on SQLite (default redis://127.0.0.1:6379/0)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="8 clients and 10 messages, to check that it runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.conversations, args.per_conversation, args.senders = 4, 2, 2
        args.messages, args.rate = 5, 20.0
    mode = frontdesk_send_mode(args.frontdesk_send)
    print_options(args)
    print(machine_summary())
    clients = args.conversations * args.per_conversation
    # Each receiving client is a socket in the receiver process and one in the server, and
    # each conversation has a sender's socket besides.
    limit = raise_open_file_limit(2 * clients + 2 * args.conversations + 1024)
    print(f"open-file limit (RLIMIT_NOFILE) of this process and its children: {limit}")

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        database_url = args.database_url or f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        bare = bench_bare(args, scratch)
        frontdesk = bench_frontdesk(args, scratch, database_url, mode)

    expected = args.senders * args.messages * args.per_conversation
    backend = "PostgreSQL" if database_url.startswith("postgresql") else "SQLite"
    how = (
        "the send frame over WebSocket"
        if mode == "ws"
        else "post_message in the sender process, events through the broker"
    )
    print(
        f"chat fan-out: {clients} clients in {args.conversations} conversations "
        f"({args.per_conversation} each), {args.senders} senders x {args.messages} messages "
        f"at {args.rate:g}/s each; Frontdesk on {backend}, its senders use {how}"
    )
    print("                               send to delivery         created to delivery")
    print(
        "  side       deliveries      p50 ms   p95 ms   max ms   p50 ms   p95 ms  frame B "
        "ack p50  sent/s"
    )
    print(describe("bare", bare, expected))
    print(describe("Frontdesk", frontdesk, expected))
    ratio = percentile(frontdesk.latencies_ms, 0.95) / percentile(bare.latencies_ms, 0.95)
    print(f"  ratio of p95 latency Frontdesk / bare: {ratio:.2f} (target 1.5 or less)")
    missing = [
        name
        for name, r in (("bare", bare), ("Frontdesk", frontdesk))
        if len(r.latencies_ms) < expected
    ]
    if missing:
        raise SystemExit(f"deliveries missing for {', '.join(missing)}")


if __name__ == "__main__":
    main()
