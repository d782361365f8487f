"""Server memory per idle WebSocket client: Frontdesk against a bare WebSocket server.

Each side runs under uvicorn in a process of its own, and ``--clients`` clients (the
``websockets`` library, in ``--client-processes`` processes of their own) connect and then
stay idle, answering the servers' keepalive pings:

- Frontdesk: ``frontdesk.app:app_from_env``; every client authenticates with its own login
  session's access token (five agents per workspace) and waits for ``ready``. The server
  then holds, per client, the socket, the connection object with its send queue, and its
  reader and writer tasks.
- Baseline: ``chat_support:bare_app``, a Starlette WebSocket route on the same server;
  every client joins a room (five per room) and waits for ``joined``, so the server holds
  the socket, the endpoint's task and a room entry.

The server's resident set size (VmRSS of /proc/<pid>/status) is read after a warm-up of a
few clients that connect and leave, and again once every client is connected and
``--settle`` seconds have passed; the difference divided by the clients is the figure. Both
sides use the same uvicorn defaults, which include permessage-deflate when the client
offers it, as ``websockets`` and browsers do.

    python bench/bench_chat_idle.py                   # 5,000 clients
    python bench/bench_chat_idle.py --smoke           # 20 clients, to check that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from chat_support import (
    ClientPlan,
    bare_environment,
    frontdesk_environment,
    hold_clients,
    machine_summary,
    new_secret_key,
    print_options,
    raise_open_file_limit,
    rss_bytes,
    seed_staff,
    server_process,
)

from frontdesk.core.migrate import upgrade

MEMBERS_PER_GROUP = 5
WARM_UP_CLIENTS = 20


def measure(
    pid: int, warm_up: list[ClientPlan], plans: list[ClientPlan], args: argparse.Namespace
) -> tuple[int, int]:
    """Return the server's RSS before and after ``plans`` connected, in bytes.

    The ``warm_up`` clients connect and leave first, so that code and buffers that the first
    connections load count in neither reading.
    """
    with hold_clients(warm_up, processes=1):
        pass
    time.sleep(args.settle)
    before = rss_bytes(pid)
    with hold_clients(plans, processes=args.client_processes):
        time.sleep(args.settle)
        after = rss_bytes(pid)
    return before, after


def bench_bare(args: argparse.Namespace, scratch: Path) -> tuple[int, int]:
    rooms = [str(uuid.uuid4()) for _ in range(-(-args.clients // MEMBERS_PER_GROUP))]
    with server_process(
        "chat_support:bare_app", bare_environment(), scratch / "bare.log"
    ) as server:
        url = f"{server.ws_base}/ws"
        plans = [
            ClientPlan(
                url, (({"type": "join", "room": rooms[index // MEMBERS_PER_GROUP]}, "joined"),)
            )
            for index in range(args.clients)
        ]
        return measure(server.pid, plans[:WARM_UP_CLIENTS], plans, args)


def bench_frontdesk(args: argparse.Namespace, scratch: Path, database_url: str) -> tuple[int, int]:
    data_dir = scratch / "data"
    data_dir.mkdir()
    upgrade(database_url)
    secret_key = new_secret_key()
    # The warm-up clients get sessions of their own, so that every measured client is a new
    # login session to the server.
    groups = -(-(args.clients + WARM_UP_CLIENTS) // MEMBERS_PER_GROUP)
    seeded = asyncio.run(
        seed_staff(
            database_url,
            secret_key,
            workspaces=groups,
            members=MEMBERS_PER_GROUP,
            conversations=1,
            token_ttl_seconds=6 * 3600,
        )
    )
    tokens = [token for workspace in seeded for token in workspace.tokens]
    env = frontdesk_environment(database_url, data_dir, secret_key)
    with server_process("frontdesk.app:app_from_env", env, scratch / "frontdesk.log") as server:
        url = f"{server.ws_base}/api/v1/realtime"
        plans = [
            ClientPlan(url, (({"type": "auth", "token": token}, "ready"),)) for token in tokens
        ]
        try:
            return measure(server.pid, plans[args.clients :], plans[: args.clients], args)
        except SystemExit:
            print(server.output()[-4000:])
            raise


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=5000, help="idle clients (default 5000)")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=2,
        help="processes that hold the clients (default 2)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        help="seconds to wait before each RSS reading (default 3)",
    )
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument("--smoke", action="store_true", help="20 clients, to check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.clients, args.client_processes, args.settle = 20, 1, 0.5
    print_options(args)
    print(machine_summary())
    # Each client is one socket in a client process and one in the server.
    limit = raise_open_file_limit(args.clients + 2048)
    print(f"open-file limit (RLIMIT_NOFILE) of this process and its children: {limit}")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        database_url = args.database_url or f"sqlite+aiosqlite:///{scratch / 'bench.db'}"
        bare = bench_bare(args, scratch)
        frontdesk = bench_frontdesk(args, scratch, database_url)

    print(f"idle WebSocket clients: {args.clients} per side")
    print("  side        RSS before MiB  RSS after MiB  per client KiB")
    per_client = {}
    for name, (before, after) in (("bare", bare), ("Frontdesk", frontdesk)):
        per_client[name] = (after - before) / args.clients
        print(
            f"  {name:10} {before / 2**20:15.1f} {after / 2**20:14.1f} {per_client[name] / 1024:15.1f}"
        )
    ratio = per_client["Frontdesk"] / per_client["bare"]
    print(f"  ratio of memory per client Frontdesk / bare: {ratio:.2f}")


if __name__ == "__main__":
    main()
