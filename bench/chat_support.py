"""Shared parts of the live chat benchmarks: servers in processes, seeded staff, figures.

Every live chat benchmark runs its servers the same way: uvicorn in a child process
(``serve_socket.py``), serving a TCP socket that this process bound on 127.0.0.1, with
uvicorn's default event loop, HTTP and WebSocket implementations and the access log off. Frontdesk
runs as ``frontdesk.app:app_from_env``. The bare baseline runs as ``chat_support:bare_app``
(defined below): a Starlette WebSocket route that keeps rooms in memory and broadcasts to
them. Both sides therefore use the same server and WebSocket library.

The bare protocol mirrors the parts of Frontdesk's that the benchmarks use:

- ``{"type": "join", "room"}`` -> ``{"type": "joined", "room"}``
- ``{"type": "send", "room", "client_message_id", "body"}`` -> ``{"type": "sent", ...}`` to
  the sender, and an ``event`` frame shaped like Frontdesk's ``conversation.message.created``
  (the message and conversation fields, with the same names) to every member of the room.
- ``{"type": "ping"}`` -> ``{"type": "pong"}``
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import multiprocessing
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
# Messages of the benchmarks start with this word and the send time in nanoseconds of
# CLOCK_MONOTONIC, which every process of the machine shares, so a receiver in another
# process computes the delivery latency from the frame alone.
STAMP = "bench"
MESSAGE_CREATED = "conversation.message.created"


# Machine and process figures


def machine_summary() -> str:
    """Describe the cores, CPU model, memory and Python of this machine in one line."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    usable = len(os.sched_getaffinity(0))
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores ({usable} usable by this process), {model}, "
        f"{memory_kib / 1024 / 1024:.0f} GiB RAM, Linux {platform.release()}, "
        f"Python {platform.python_version()}; load average {load}"
    )


def print_options(args: Any) -> None:
    """Print the command line and every option's value, so a figure can be reproduced."""
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    print("options: " + ", ".join(f"{name}={value}" for name, value in sorted(vars(args).items())))


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit).

    Child processes inherit the new limit. Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used, from /proc/<pid>/stat (Linux only)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name in parentheses may contain spaces; the fields follow it.
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/<pid>/status (Linux only)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line for process {pid}")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ``values`` (``fraction`` 0.95 for p95)."""
    if not values:
        raise ValueError("no values to take a percentile of")
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def stamped_body(words: str) -> str:
    """Build a message body that starts with the send time, so the receiver can time it."""
    return f"{STAMP} {time.monotonic_ns()} {words}"


def stamp_of(body: str) -> int | None:
    """Read the send time that ``stamped_body`` wrote; None for other messages."""
    parts = body.split(" ", 2)
    if len(parts) < 2 or parts[0] != STAMP or not parts[1].isdigit():
        return None
    return int(parts[1])


def created_message(text: str) -> dict[str, Any] | None:
    """Parse a frame; return the message of a ``conversation.message.created`` event, else None."""
    frame = json.loads(text)
    if frame.get("type") != "event" or frame.get("event") != MESSAGE_CREATED:
        return None
    message = frame["data"]["message"]
    return message if isinstance(message, dict) else None


# Servers in child processes


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{HOST}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def server_process(
    factory: str, env: dict[str, str], log_path: Path, *, startup_timeout: float = 60.0
) -> Iterator[ServerProcess]:
    """Serve FACTORY with uvicorn in a child process and yield it once /healthz returns 200."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    # A large backlog: the benchmarks open thousands of connections in bursts.
    sock.listen(4096)
    port = int(sock.getsockname()[1])
    command = [sys.executable, str(BENCH_DIR / "serve_socket.py"), factory, str(sock.fileno())]
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            pass_fds=[sock.fileno()],
        )
    finally:
        sock.close()
    server = ServerProcess(process=process, port=port, log_path=log_path)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if httpx.get(f"{server.http_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server {factory} did not start:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log_file.close()


def frontdesk_environment(database_url: str, data_dir: Path, secret_key: str) -> dict[str, str]:
    """FRONTDESK_* variables for a benchmark server: no rate limits, warnings only in logs.

    Other FRONTDESK_* variables of this process (a broker, say) pass through.
    """
    env = dict(os.environ)
    env.update(
        {
            "FRONTDESK_DATABASE_URL": database_url,
            "FRONTDESK_DATA_DIR": str(data_dir),
            "FRONTDESK_SECRET_KEY": secret_key,
            "FRONTDESK_ENCRYPTION_KEYS": "b1:" + base64.b64encode(os.urandom(32)).decode(),
            "FRONTDESK_RATE_LIMITS_ENABLED": "false",
            "FRONTDESK_ARGON2_MEMORY_KIB": "8",
            "FRONTDESK_ARGON2_TIME_COST": "1",
            "FRONTDESK_LOG_LEVEL": "WARNING",
            "FRONTDESK_LOG_FORMAT": "console",
        }
    )
    return env


def new_secret_key() -> str:
    return "bench-" + os.urandom(24).hex()


# Staff seeded straight into the database


@dataclass
class SeededWorkspace:
    workspace_id: uuid.UUID
    conversation_ids: list[uuid.UUID]
    # Each member's user id and the access token of their one login session.
    user_ids: list[uuid.UUID] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


async def seed_staff(
    database_url: str,
    secret_key: str,
    *,
    workspaces: int,
    members: int,
    conversations: int,
    token_ttl_seconds: int = 3600,
) -> list[SeededWorkspace]:
    """Insert workspaces, each with ``members`` agents (one login session each) and
    ``conversations`` open chat conversations; return their ids and access tokens.

    The rows go in with a few bulk INSERTs, which is far faster than signing up through the
    API and leaves the tables as the API would (the columns the models require).
    """
    from frontdesk.auth.models import AuthSession, User
    from frontdesk.auth.tokens import issue_access_token
    from frontdesk.conversations.models import Conversation
    from frontdesk.core.db import create_engine
    from frontdesk.core.ids import uuid7
    from frontdesk.workspaces.models import Membership, Workspace

    now = datetime.now(UTC)
    expires = now + timedelta(days=30)
    seeded: list[SeededWorkspace] = []
    workspace_rows: list[dict[str, Any]] = []
    user_rows: list[dict[str, Any]] = []
    membership_rows: list[dict[str, Any]] = []
    session_rows: list[dict[str, Any]] = []
    conversation_rows: list[dict[str, Any]] = []
    for workspace_index in range(workspaces):
        workspace_id = uuid7()
        workspace_rows.append(
            {
                "id": workspace_id,
                "name": f"Bench Studio {workspace_index}",
                "default_country": "US",
                "settings": {},
                "created_at": now,
                "updated_at": now,
            }
        )
        entry = SeededWorkspace(workspace_id=workspace_id, conversation_ids=[])
        for member_index in range(members):
            user_id, session_id = uuid7(), uuid7()
            user_rows.append(
                {
                    "id": user_id,
                    "email": f"agent-{workspace_index}-{member_index}-{user_id.hex[-8:]}@example.com",
                    "password_hash": "not-used",
                    "full_name": f"Agent {workspace_index}.{member_index}",
                    "is_instance_admin": False,
                    "locale": "en",
                    "created_at": now,
                    "updated_at": now,
                }
            )
            membership_rows.append(
                {
                    "workspace_id": workspace_id,
                    "user_id": user_id,
                    "role": "agent",
                    "notification_preferences": {},
                    "created_at": now,
                }
            )
            session_rows.append(
                {
                    "id": session_id,
                    "user_id": user_id,
                    "workspace_id": workspace_id,
                    "created_at": now,
                    "last_used_at": now,
                    "expires_at": expires,
                }
            )
            entry.user_ids.append(user_id)
            entry.tokens.append(
                issue_access_token(
                    secret_key.encode(),
                    user_id=user_id,
                    session_id=session_id,
                    workspace_id=workspace_id,
                    now=now,
                    ttl_seconds=token_ttl_seconds,
                )
            )
        for conversation_index in range(conversations):
            conversation_id = uuid7()
            conversation_rows.append(
                {
                    "id": conversation_id,
                    "workspace_id": workspace_id,
                    "channel": "chat",
                    "status": "open",
                    "subject": f"Bench conversation {workspace_index}.{conversation_index}",
                    "last_seq": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            entry.conversation_ids.append(conversation_id)
        seeded.append(entry)

    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            for model, rows in (
                (Workspace, workspace_rows),
                (User, user_rows),
                (Membership, membership_rows),
                (AuthSession, session_rows),
                (Conversation, conversation_rows),
            ):
                for start in range(0, len(rows), 1000):
                    await connection.execute(sa.insert(model), rows[start : start + 1000])
    finally:
        await engine.dispose()
    return seeded


def frontdesk_supports(frame_type: str) -> bool:
    """Tell whether Frontdesk's realtime protocol accepts client frames of this type."""
    from frontdesk.realtime.protocol import FrameError, parse_client_frame

    probe = {
        "type": frame_type,
        "conversation_id": str(uuid.uuid4()),
        "client_message_id": "probe",
        "body": "probe",
    }
    parsed = parse_client_frame(json.dumps(probe))
    return not (isinstance(parsed, FrameError) and parsed.code == "unknown_type")


# The bare baseline server


class BareRooms:
    """Rooms of open WebSockets and a message counter per room, all in memory."""

    def __init__(self) -> None:
        self.members: dict[str, set[WebSocket]] = {}
        self.seq: dict[str, int] = {}
        self.positions = count(1)
        self.created_at = datetime.now(UTC).isoformat()


def _bare_message(rooms: BareRooms, room: str, frame: dict[str, Any]) -> dict[str, Any]:
    """Build the message as Frontdesk's message_dict shapes it, from a send frame."""
    seq = rooms.seq.get(room, 0) + 1
    rooms.seq[room] = seq
    body = str(frame.get("body", ""))
    now = datetime.now(UTC).isoformat()
    return {
        "id": str(uuid.uuid4()),
        "conversation_id": room,
        "seq": seq,
        "kind": "message",
        "author": {"type": "member", "id": str(frame.get("author_id", "")), "name": "Agent"},
        "body": body,
        "body_html": f"<p>{html.escape(body)}</p>\n",
        "attachments": [],
        "data": {},
        "client_message_id": frame.get("client_message_id"),
        "created_at": now,
        "edited_at": None,
        "deleted_at": None,
    }


def _bare_conversation(rooms: BareRooms, room: str, now: str) -> dict[str, Any]:
    """Build the room as Frontdesk's conversation_dict shapes a conversation."""
    return {
        "id": room,
        "channel": "chat",
        "status": "open",
        "snoozed_until": None,
        "contact_id": None,
        "enquiry_id": None,
        "visitor_id": None,
        "assignee_id": None,
        "subject": f"Bench conversation {room[:8]}",
        "last_seq": rooms.seq.get(room, 0),
        "last_message_at": now,
        "created_at": rooms.created_at,
        "updated_at": now,
    }


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


async def _bare_broadcast(rooms: BareRooms, room: str, text: str) -> None:
    for member in list(rooms.members.get(room, ())):
        try:
            await member.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError):
            rooms.members[room].discard(member)


async def _bare_endpoint(websocket: WebSocket) -> None:
    rooms: BareRooms = websocket.app.state.rooms
    await websocket.accept()
    joined: set[str] = set()
    try:
        while True:
            frame = json.loads(await websocket.receive_text())
            kind = frame.get("type")
            room = str(frame.get("room", ""))
            if kind == "join":
                rooms.members.setdefault(room, set()).add(websocket)
                joined.add(room)
                await websocket.send_text(_dumps({"type": "joined", "room": room}))
            elif kind == "send":
                message = _bare_message(rooms, room, frame)
                await websocket.send_text(
                    _dumps(
                        {
                            "type": "sent",
                            "client_message_id": frame.get("client_message_id"),
                            "message": message,
                        }
                    )
                )
                event = {
                    "type": "event",
                    "id": str(next(rooms.positions)),
                    "event": MESSAGE_CREATED,
                    "data": {
                        "message": message,
                        "conversation": _bare_conversation(rooms, room, message["created_at"]),
                    },
                }
                await _bare_broadcast(rooms, room, _dumps(event))
            elif kind == "ping":
                await websocket.send_text('{"type":"pong"}')
            else:
                await websocket.send_text(_dumps({"type": "error", "code": "unknown_type"}))
    except WebSocketDisconnect:
        pass
    finally:
        for room in joined:
            rooms.members.get(room, set()).discard(websocket)


async def _bare_health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def bare_app() -> Starlette:
    """Factory for ``uvicorn --factory chat_support:bare_app``: the bare broadcast server."""
    app = Starlette(routes=[Route("/healthz", _bare_health), WebSocketRoute("/ws", _bare_endpoint)])
    app.state.rooms = BareRooms()
    return app


def bare_environment() -> dict[str, str]:
    return dict(os.environ)


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """Return the event loop factory uvicorn picks (uvloop when installed), for client processes."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


# Load generator: WebSocket clients in processes of their own


@dataclass(frozen=True)
class ClientPlan:
    """One WebSocket client: where it connects and the frames it sends before it listens.

    Each handshake step is a frame and the ``type`` of the reply to wait for.
    """

    url: str
    handshake: tuple[tuple[dict[str, Any], str], ...]


@dataclass(frozen=True)
class SenderTarget:
    """A conversation that a sender writes to, over a connection of its own."""

    plan: ClientPlan
    # The send frame without client_message_id and body, which change per message.
    send_frame: dict[str, Any]


class HandshakeFailed(Exception):
    pass


async def open_client(plan: ClientPlan) -> Any:
    """Connect and run the handshake; returns the open ``websockets`` client connection."""
    from websockets.asyncio.client import connect

    websocket = await connect(plan.url, proxy=None, open_timeout=60, max_queue=None)
    for frame, reply_type in plan.handshake:
        await websocket.send(json.dumps(frame))
        while True:
            reply = json.loads(await websocket.recv())
            if reply.get("type") == reply_type:
                break
            if reply.get("type") == "error":
                await websocket.close()
                raise HandshakeFailed(f"{frame.get('type')} failed: {reply}")
    return websocket


async def open_clients(plans: Sequence[ClientPlan], concurrency: int) -> list[Any]:
    """Open every client, at most ``concurrency`` handshakes at a time, in ``plans`` order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(plan: ClientPlan) -> Any:
        async with gate:
            return await open_client(plan)

    return list(await asyncio.gather(*(one(plan) for plan in plans)))


def receiver_process(
    plans: list[ClientPlan],
    connect_concurrency: int,
    ready: Any,
    stop: Any,
    delivered: Any,
    results: Any,
) -> None:
    """Hold ``plans`` open and time every stamped message event until ``stop`` is set.

    Sends (latencies and times after the message's created_at, both in ms as array('d')
    bytes, message event frames received, their bytes, clients closed early, error text)
    through the ``results`` pipe.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(_receive(plans, connect_concurrency, ready, stop, delivered))
    except Exception as exc:
        ready.set()
        outcome = (b"", b"", 0, 0, 0, repr(exc))
    results.send(outcome)


async def _receive(
    plans: list[ClientPlan], connect_concurrency: int, ready: Any, stop: Any, delivered: Any
) -> tuple[bytes, bytes, int, int, int, str]:
    from array import array

    from websockets.exceptions import ConnectionClosed

    latencies = array("d")
    # From the message's created_at (the server's wall clock as it stored the message) to
    # the arrival, so the figures split into before and after the message was created.
    after_created = array("d")
    received = {"frames": 0, "bytes": 0, "closed": 0}
    clients = await open_clients(plans, connect_concurrency)
    ready.set()

    async def listen(websocket: Any) -> None:
        try:
            async for text in websocket:
                arrived = time.monotonic_ns()
                arrived_wall = time.time()
                message = created_message(text)
                if message is None:
                    continue
                received["frames"] += 1
                received["bytes"] += len(text.encode())
                stamp = stamp_of(str(message.get("body", "")))
                if stamp is None:
                    continue
                latencies.append((arrived - stamp) / 1e6)
                created_at = datetime.fromisoformat(str(message["created_at"])).timestamp()
                after_created.append((arrived_wall - created_at) * 1000)
        except ConnectionClosed:
            pass
        if not stop.is_set():
            received["closed"] += 1

    tasks = [asyncio.create_task(listen(websocket)) for websocket in clients]
    while not stop.is_set():
        delivered.value = len(latencies)
        await asyncio.sleep(0.02)
    delivered.value = len(latencies)
    closing = [asyncio.create_task(websocket.close()) for websocket in clients]
    await asyncio.wait(closing, timeout=10)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (
        latencies.tobytes(),
        after_created.tobytes(),
        received["frames"],
        received["bytes"],
        received["closed"],
        "",
    )


MESSAGE_WORDS = "Thanks for getting back to us, the studio is free on Tuesday from two until six."


def sender_process(
    targets_per_sender: list[list[SenderTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Run the senders: each sends ``messages_per_sender`` messages at its rate, in turn to
    each of its conversations, and waits for the ``sent`` reply before the next send.

    Sends (messages sent, ack latencies in ms as array('d') bytes, error text) through
    ``results``.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(
                _send(targets_per_sender, messages_per_sender, rate_per_sender, ready, go)
            )
    except Exception as exc:
        ready.set()
        outcome = (0, b"", repr(exc))
    results.send(outcome)


async def _send(
    targets_per_sender: list[list[SenderTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
) -> tuple[int, bytes, str]:
    from array import array

    acks = array("d")
    pending: dict[str, asyncio.Future[None]] = {}
    all_targets = [target for targets in targets_per_sender for target in targets]
    clients = await open_clients([target.plan for target in all_targets], 50)
    connection_of = {
        id(target): client for target, client in zip(all_targets, clients, strict=True)
    }

    async def read_acks(websocket: Any) -> None:
        async for text in websocket:
            frame = json.loads(text)
            waiter = pending.get(str(frame.get("client_message_id")))
            if waiter is None or waiter.done():
                continue
            if frame.get("type") == "sent":
                waiter.set_result(None)
            elif frame.get("type") == "error":
                waiter.set_exception(RuntimeError(f"send failed: {frame}"))

    readers = [asyncio.create_task(read_acks(client)) for client in clients]
    ready.set()
    while not go.is_set():  # noqa: ASYNC110  (a multiprocessing event, set by another process)
        await asyncio.sleep(0.01)

    async def run_sender(number: int, targets: list[SenderTarget]) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index in range(messages_per_sender):
            if rate_per_sender > 0:
                delay = started + index / rate_per_sender - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            target = targets[index % len(targets)]
            client_message_id = f"s{number}-{index}"
            waiter = loop.create_future()
            pending[client_message_id] = waiter
            frame = dict(
                target.send_frame,
                client_message_id=client_message_id,
                body=stamped_body(MESSAGE_WORDS),
            )
            sent_at = time.monotonic_ns()
            await connection_of[id(target)].send(json.dumps(frame))
            await asyncio.wait_for(waiter, 60)
            acks.append((time.monotonic_ns() - sent_at) / 1e6)
            del pending[client_message_id]
        return messages_per_sender

    counts = await asyncio.gather(
        *(run_sender(number, targets) for number, targets in enumerate(targets_per_sender))
    )
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    return (sum(counts), acks.tobytes(), "")


@dataclass
class LoadResult:
    latencies_ms: list[float]
    # Arrival minus the message's created_at, by the wall clock.
    after_created_ms: list[float]
    ack_ms: list[float]
    sent: int
    frames: int
    frame_bytes: int
    closed_early: int
    seconds: float


def _split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    return [list(items[index::parts]) for index in range(parts)]


def run_load(
    receiver_plans: Sequence[ClientPlan],
    sender: Callable[..., None],
    sender_args: tuple[Any, ...],
    *,
    expected_deliveries: int,
    receiver_processes: int,
    connect_concurrency: int = 100,
    drain_seconds: float = 30.0,
) -> LoadResult:
    """Connect the receivers (in their own processes), then start ``sender(*sender_args,
    ready, go, results)`` in another process, let it send, and wait until
    ``expected_deliveries`` stamped events arrived or ``drain_seconds`` passed.
    """
    from array import array

    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    receivers = []
    for plans in _split(receiver_plans, receiver_processes):
        ready = context.Event()
        delivered = context.Value("q", 0, lock=False)
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=receiver_process,
            args=(plans, connect_concurrency, ready, stop, delivered, child_end),
            daemon=True,
        )
        process.start()
        receivers.append((process, ready, delivered, parent_end))
    for _process, ready, _delivered, _pipe in receivers:
        if not ready.wait(600):
            raise SystemExit("the receiving clients did not connect within 600 s")

    sender_ready, go = context.Event(), context.Event()
    sender_pipe, sender_child_end = context.Pipe(duplex=False)
    sender_runner = context.Process(
        target=sender, args=(*sender_args, sender_ready, go, sender_child_end), daemon=True
    )
    sender_runner.start()
    if not sender_ready.wait(600):
        raise SystemExit("the senders did not connect within 600 s")
    started = time.monotonic()
    go.set()
    sent, ack_bytes, sender_error = sender_pipe.recv()
    sender_runner.join(30)
    deadline = time.monotonic() + drain_seconds
    while time.monotonic() < deadline:
        if sum(delivered.value for _p, _r, delivered, _pipe in receivers) >= expected_deliveries:
            break
        time.sleep(0.02)
    seconds = time.monotonic() - started
    stop.set()

    latencies = array("d")
    after_created = array("d")
    frames = frame_bytes = closed_early = 0
    errors = [sender_error] if sender_error else []
    for process, _ready, _delivered, pipe in receivers:
        latency_bytes, after_bytes, process_frames, process_bytes, process_closed, error = (
            pipe.recv()
        )
        process.join(30)
        latencies.frombytes(latency_bytes)
        after_created.frombytes(after_bytes)
        frames += process_frames
        frame_bytes += process_bytes
        closed_early += process_closed
        if error:
            errors.append(error)
    if errors:
        raise SystemExit("the load generator failed: " + "; ".join(errors))
    acks = array("d")
    acks.frombytes(ack_bytes)
    return LoadResult(
        latencies_ms=list(latencies),
        after_created_ms=list(after_created),
        ack_ms=list(acks),
        sent=sent,
        frames=frames,
        frame_bytes=frame_bytes,
        closed_early=closed_early,
        seconds=seconds,
    )


@dataclass(frozen=True)
class ServiceTarget:
    """A conversation that a service sender writes to as one of the workspace's members."""

    workspace_id: uuid.UUID
    conversation_id: uuid.UUID
    user_id: uuid.UUID


def service_sender_process(
    env: dict[str, str],
    targets_per_sender: list[list[ServiceTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Senders that store messages with ``conversations.service.post_message`` in this
    process, each in its own unit of work, as a route would; the commit publishes the
    events through the configured broker to the server's gateway.

    Same schedule and results as ``sender_process``.
    """
    os.environ.update(env)
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(
                _service_send(targets_per_sender, messages_per_sender, rate_per_sender, ready, go)
            )
    except Exception as exc:
        ready.set()
        outcome = (0, b"", repr(exc))
    results.send(outcome)


async def _service_send(
    targets_per_sender: list[list[ServiceTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
) -> tuple[int, bytes, str]:
    from array import array

    from frontdesk import models as _models  # noqa: F401  (maps every table the ORM joins)
    from frontdesk.config import Settings
    from frontdesk.conversations.service import Author, get_conversation, post_message
    from frontdesk.core.logging import configure_logging
    from frontdesk.core.uow import unit_of_work
    from frontdesk.runtime import build_runtime

    settings = Settings()
    configure_logging(settings)
    runtime = build_runtime(settings)
    await runtime.start()
    acks = array("d")
    ready.set()
    while not go.is_set():  # noqa: ASYNC110  (a multiprocessing event, set by another process)
        await asyncio.sleep(0.01)

    async def run_sender(number: int, targets: list[ServiceTarget]) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index in range(messages_per_sender):
            if rate_per_sender > 0:
                delay = started + index / rate_per_sender - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            target = targets[index % len(targets)]
            sent_at = time.monotonic_ns()
            async with unit_of_work(runtime) as uow:
                conversation = await get_conversation(
                    uow, workspace_id=target.workspace_id, conversation_id=target.conversation_id
                )
                await post_message(
                    uow,
                    conversation,
                    author=Author(type="member", id=target.user_id, name="Agent"),
                    body=stamped_body(MESSAGE_WORDS),
                    client_message_id=f"s{number}-{index}",
                )
            acks.append((time.monotonic_ns() - sent_at) / 1e6)
        return messages_per_sender

    try:
        counts = await asyncio.gather(
            *(run_sender(number, targets) for number, targets in enumerate(targets_per_sender))
        )
    finally:
        await runtime.close()
    return (sum(counts), acks.tobytes(), "")


@contextmanager
def hold_clients(
    plans: Sequence[ClientPlan], *, processes: int, connect_concurrency: int = 100
) -> Iterator[None]:
    """Open ``plans`` in ``processes`` client processes and keep them open (answering pings)
    until the block ends. Raises SystemExit when a client fails or the server closes one."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    holders = []
    for share in _split(plans, processes):
        ready = context.Event()
        delivered = context.Value("q", 0, lock=False)
        parent_end, child_end = context.Pipe(duplex=False)
        process = context.Process(
            target=receiver_process,
            args=(share, connect_concurrency, ready, stop, delivered, child_end),
            daemon=True,
        )
        process.start()
        holders.append((process, ready, parent_end))
    try:
        for _process, ready, pipe in holders:
            if not ready.wait(900):
                raise SystemExit("the clients did not connect within 900 s")
            if pipe.poll():
                # The process sent its results early: it failed while connecting.
                raise SystemExit("the clients failed to connect: " + str(pipe.recv()[-1]))
        yield
    finally:
        stop.set()
        errors = []
        for process, _ready, pipe in holders:
            if pipe.poll(60):
                *_figures, closed, error = pipe.recv()
                if error:
                    errors.append(error)
                elif closed:
                    errors.append(f"{closed} clients were closed by the server")
            process.join(30)
            if process.is_alive():
                process.kill()
        if errors:
            raise SystemExit("the idle clients failed: " + "; ".join(errors))


def frontdesk_receivers(
    seeded: Sequence[SeededWorkspace], url: str, members: range
) -> list[ClientPlan]:
    """Receiving clients: the given members of every workspace, each authenticated and,
    when the protocol has the ``subscribe`` frame, subscribed to the workspace's first
    conversation. Ordered member by member, so a split across processes mixes workspaces."""
    subscribe = frontdesk_supports("subscribe")
    plans = []
    for member in members:
        for workspace in seeded:
            steps: list[tuple[dict[str, Any], str]] = [
                ({"type": "auth", "token": workspace.tokens[member]}, "ready")
            ]
            if subscribe:
                conversation_id = str(workspace.conversation_ids[0])
                steps.append(
                    ({"type": "subscribe", "conversation_id": conversation_id}, "subscribed")
                )
            plans.append(ClientPlan(url, tuple(steps)))
    return plans


def frontdesk_senders(
    seeded: Sequence[SeededWorkspace], url: str, mode: str, env: dict[str, str], senders: int
) -> tuple[Callable[..., None], tuple[Any, ...]]:
    """The sender process and its leading arguments for ``run_load``: member 0 of every
    workspace writes to the workspace's first conversation, the workspaces shared out
    among ``senders`` senders.

    ``mode`` "ws" sends the ``send`` frame over the member's own authenticated connection,
    "rest" posts to the staff API with the member's token, and "service" calls post_message
    in the sender process (``env`` configures its runtime).
    """
    if mode == "rest":
        http_targets = [
            HttpTarget(workspace.tokens[0], workspace.conversation_ids[0]) for workspace in seeded
        ]
        base_url = "http" + url.removeprefix("ws").split("/api/", 1)[0]
        return http_sender_process, (base_url, _split(http_targets, senders))
    if mode == "ws":
        targets: list[Any] = [
            SenderTarget(
                ClientPlan(url, (({"type": "auth", "token": workspace.tokens[0]}, "ready"),)),
                {"type": "send", "conversation_id": str(workspace.conversation_ids[0])},
            )
            for workspace in seeded
        ]
        return sender_process, (_split(targets, senders),)
    targets = [
        ServiceTarget(workspace.workspace_id, workspace.conversation_ids[0], workspace.user_ids[0])
        for workspace in seeded
    ]
    return service_sender_process, (env, _split(targets, senders))


def frontdesk_send_mode(requested: str) -> str:
    """Resolve "auto" to "ws" when the protocol has the send frame, else "service"."""
    if requested != "auto":
        return requested
    return "ws" if frontdesk_supports("send") else "service"


def use_cross_process_broker(env: dict[str, str], mode: str, redis_url: str) -> None:
    """Give the server a broker that a service sender in another process can reach.

    The service sender and the server share the database but not memory; on SQLite the
    default broker is in memory, so the commit's signal goes through Redis instead.
    PostgreSQL's default broker (LISTEN/NOTIFY) already crosses processes.
    """
    if mode == "service" and env["FRONTDESK_DATABASE_URL"].startswith("sqlite"):
        env.setdefault("FRONTDESK_BROKER", "redis")
        env.setdefault("FRONTDESK_REDIS_URL", redis_url)


@dataclass(frozen=True)
class HttpTarget:
    """A conversation that an HTTP sender posts to, with a member's access token."""

    token: str
    conversation_id: uuid.UUID


def http_sender_process(
    base_url: str,
    targets_per_sender: list[list[HttpTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Senders that POST /api/v1/conversations/{id}/messages, each over one keep-alive
    HTTP/1.1 connection (``KeepAliveConnection``), waiting for the 201 before the next
    message.

    Same schedule and results as ``sender_process``.
    """
    try:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            outcome = runner.run(
                _http_send(
                    base_url, targets_per_sender, messages_per_sender, rate_per_sender, ready, go
                )
            )
    except Exception as exc:
        ready.set()
        outcome = (0, b"", repr(exc))
    results.send(outcome)


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection that sends a request and reads its response.

    The senders use it instead of httpx, which took about 0.7 ms of CPU a request in the
    sender process. On two cores that CPU is taken from the server under test, and with four
    senders in one process it delayed each round of requests by about 2 ms. The responses
    it reads are those of uvicorn: a status line, headers with Content-Length, and the body.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self._reader = reader
        self._writer = writer
        self._host = host

    @classmethod
    async def open(cls, base_url: str) -> KeepAliveConnection:
        url = httpx.URL(base_url)
        host, port = url.host, url.port or 80
        reader, writer = await asyncio.open_connection(host, port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, bytes]:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._host}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        length = None
        for line in header_lines:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"response without Content-Length: {status_line}")
        return status, await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


async def _http_send(
    base_url: str,
    targets_per_sender: list[list[HttpTarget]],
    messages_per_sender: int,
    rate_per_sender: float,
    ready: Any,
    go: Any,
) -> tuple[int, bytes, str]:
    from array import array

    acks = array("d")
    connections = [await KeepAliveConnection.open(base_url) for _ in targets_per_sender]
    # One request each opens the connections before the clock starts.
    for connection in connections:
        status, _body = await connection.request("GET", "/healthz", {})
        if status != 200:
            raise RuntimeError(f"GET /healthz failed: {status}")
    ready.set()
    while not go.is_set():  # noqa: ASYNC110  (a multiprocessing event, set by another process)
        await asyncio.sleep(0.01)

    async def run_sender(
        number: int, targets: list[HttpTarget], connection: KeepAliveConnection
    ) -> int:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index in range(messages_per_sender):
            if rate_per_sender > 0:
                delay = started + index / rate_per_sender - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            target = targets[index % len(targets)]
            sent_at = time.monotonic_ns()
            body = json.dumps(
                {
                    "body": stamped_body(MESSAGE_WORDS),
                    "kind": "message",
                    "client_message_id": f"s{number}-{index}",
                }
            ).encode()
            status, answer = await connection.request(
                "POST",
                f"/api/v1/conversations/{target.conversation_id}/messages",
                {"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"},
                body,
            )
            if status != 201:
                raise RuntimeError(f"POST failed with status {status}: {answer[:500]!r}")
            acks.append((time.monotonic_ns() - sent_at) / 1e6)
        return messages_per_sender

    try:
        counts = await asyncio.gather(
            *(
                run_sender(number, targets, connection)
                for number, (targets, connection) in enumerate(
                    zip(targets_per_sender, connections, strict=True)
                )
            )
        )
    finally:
        for connection in connections:
            await connection.close()
    return (sum(counts), acks.tobytes(), "")


def frontdesk_has_message_route() -> bool:
    """Tell whether the staff API has POST /conversations/{id}/messages."""
    try:
        from frontdesk.conversations.routes import router
    except ImportError:
        return False
    return any(
        getattr(route, "path", "").endswith("/{conversation_id}/messages")
        and "POST" in getattr(route, "methods", ())
        for route in router.routes
    )
