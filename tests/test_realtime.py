"""The realtime gateway, tested with real WebSocket clients against a uvicorn server.

Most tests run the app in this event loop (``serve_in_process``), so they can record events
through the server's own runtime and read the gateway's state. The cross-process test runs
two uvicorn subprocesses on one Postgres database.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from conftest import make_settings, truncate_all
from frontdesk.app import create_app
from frontdesk.auth.models import AuthSession, User
from frontdesk.auth.tokens import issue_access_token
from frontdesk.core.clock import FrozenClock
from frontdesk.core.events import prune_events, sequence_pending_events
from frontdesk.core.models import Event
from frontdesk.core.uow import unit_of_work
from frontdesk.realtime.gateway import Gateway
from frontdesk.realtime.protocol import (
    MAX_FRAME_BYTES,
    REPLAY_LIMIT,
    FrameError,
    parse_client_frame,
)
from frontdesk.runtime import Runtime, build_runtime
from frontdesk.workspaces.models import Membership, Workspace
from live_server import (
    InProcessServer,
    SubprocessServer,
    run_subprocess_server,
    serve_in_process,
    server_environment,
)
from redis_server import redis_url as redis_url

WAIT = 5.0
# How long a test waits to show that no frame arrives. Delivery order is proved separately by
# a marker event; this wait only catches a frame that would come after the marker.
QUIET = 0.3


# Server and data helpers


@dataclass
class Server:
    live: InProcessServer
    runtime: Runtime
    gateway: Gateway
    clock: FrozenClock

    @property
    def realtime_url(self) -> str:
        return f"{self.live.ws_url}/api/v1/realtime"


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    workspace_id: uuid.UUID
    session_id: uuid.UUID
    token: str


@pytest.fixture
def realtime_settings() -> dict[str, Any]:
    """Settings of the test's server; override per test with ``@pytest.mark.parametrize``."""
    return {}


@pytest.fixture
async def server(
    database_url: str, tmp_path: Path, clock: FrozenClock, realtime_settings: dict[str, Any]
) -> AsyncIterator[Server]:
    await truncate_all(database_url)
    settings = make_settings(database_url, tmp_path / "data", **realtime_settings)
    app = create_app(settings, clock=clock, run_worker=False)
    async with serve_in_process(app) as live:
        yield Server(
            live=live,
            runtime=app.state.runtime,
            gateway=app.state.gateway,
            clock=clock,
        )


async def add_member(
    runtime: Runtime,
    *,
    workspace_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    role: str = "agent",
    session_ttl: timedelta = timedelta(days=30),
) -> Member:
    """Create a login session for a member, and the workspace, user and membership if needed."""
    async with unit_of_work(runtime) as uow:
        now = uow.now()
        if workspace_id is None:
            workspace = Workspace(name="Studio", created_at=now, updated_at=now)
            uow.session.add(workspace)
            await uow.session.flush()
            workspace_id = workspace.id
        if user_id is None:
            user = User(
                email=f"member-{uuid.uuid4().hex[:10]}@example.com",
                password_hash="not-used",
                full_name="Test Member",
                created_at=now,
                updated_at=now,
            )
            uow.session.add(user)
            await uow.session.flush()
            user_id = user.id
        # A second login session of an existing member (another device) reuses the membership.
        if await uow.session.get(Membership, (workspace_id, user_id)) is None:
            uow.session.add(
                Membership(workspace_id=workspace_id, user_id=user_id, role=role, created_at=now)
            )
        login = AuthSession(
            user_id=user_id,
            workspace_id=workspace_id,
            created_at=now,
            last_used_at=now,
            expires_at=now + session_ttl,
        )
        uow.session.add(login)
        await uow.session.flush()
        session_id = login.id
    return Member(
        user_id=user_id,
        workspace_id=workspace_id,
        session_id=session_id,
        token=token_for(runtime, user_id, session_id, workspace_id),
    )


def token_for(
    runtime: Runtime,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    workspace_id: uuid.UUID | None,
    *,
    issued_ago: timedelta = timedelta(0),
) -> str:
    return issue_access_token(
        runtime.secrets.secret_key,
        user_id=user_id,
        session_id=session_id,
        workspace_id=workspace_id,
        now=runtime.clock.now() - issued_ago,
        ttl_seconds=runtime.settings.access_token_ttl_seconds,
    )


def fresh_token(server: Server, member: Member) -> Member:
    """Issue a new access token after a test moved the clock past the old one's expiry."""
    token = token_for(server.runtime, member.user_id, member.session_id, member.workspace_id)
    return dataclasses.replace(member, token=token)


async def record(
    runtime: Runtime,
    name: str,
    data: dict[str, Any],
    *,
    workspace_id: uuid.UUID | None,
    user_id: uuid.UUID | None = None,
) -> int:
    """Record one event in its own transaction, which also publishes it; return its position."""
    async with unit_of_work(runtime) as uow:
        event = uow.record_event(name, data, workspace_id=workspace_id, user_id=user_id)
    return await position_of(runtime, event.id)


async def position_of(runtime: Runtime, event_id: int) -> int:
    async with runtime.sessionmaker() as session:
        position = await session.scalar(sa.select(Event.position).where(Event.id == event_id))
    assert position is not None, f"event {event_id} was not sequenced"
    return position


def enquiry(subject: str) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "subject": subject, "status": "new"}


# Client helpers


async def open_socket(server: Server, **options: Any) -> ClientConnection:
    # proxy=None: never route the test connection through a proxy from the environment.
    return await connect(server.realtime_url, open_timeout=WAIT, proxy=None, **options)


async def authenticate(
    ws: ClientConnection, token: str, *, last_event_id: str | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "auth", "token": token}
    if last_event_id is not None:
        frame["last_event_id"] = last_event_id
    await ws.send(json.dumps(frame))
    ready = await receive(ws)
    assert ready["type"] == "ready", ready
    return ready


async def connect_member(
    server: Server, member: Member, *, last_event_id: str | None = None
) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await open_socket(server)
    ready = await authenticate(ws, member.token, last_event_id=last_event_id)
    return ws, ready


# Staff connections also receive presence frames whenever a colleague connects; the event
# tests here skip them, and tests/test_realtime_chat.py tests presence.
PRESENCE_TYPES = ("presence", "presence_snapshot")


async def receive(ws: ClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    """Return the next frame that is not a presence frame."""
    async with asyncio.timeout(timeout):
        while True:
            frame: dict[str, Any] = json.loads(await ws.recv())
            if frame.get("type") not in PRESENCE_TYPES:
                return frame


async def receive_until(
    ws: ClientConnection, done: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Collect frames up to and including the first one for which ``done`` is true."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT):
        while True:
            frame = await receive(ws)
            frames.append(frame)
            if done(frame):
                return frames


async def assert_quiet(ws: ClientConnection) -> None:
    with pytest.raises(TimeoutError):
        frame = await receive(ws, QUIET)
        pytest.fail(f"expected no frame, received {frame!r}")


async def close_code(ws: ClientConnection, timeout: float = WAIT) -> int | None:
    """Read until the server closes the connection; return the close code it sent."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd is not None else None


def event_ids(frames: list[dict[str, Any]]) -> list[int]:
    return [int(frame["id"]) for frame in frames if frame["type"] == "event"]


# Delivery


async def test_event_reaches_member(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, ready = await connect_member(server, member)

    assert ready["user_id"] == str(member.user_id)
    assert ready["workspace_id"] == str(member.workspace_id)
    assert ready["role"] == "agent"
    assert ready["last_event_id"] == "0"

    data = enquiry("Wedding flowers")
    position = await record(
        server.runtime, "enquiry.created", data, workspace_id=member.workspace_id
    )
    frame = await receive(ws)

    assert frame == {"type": "event", "id": str(position), "event": "enquiry.created", "data": data}
    await ws.close()


async def test_ready_reports_latest_position(server: Server) -> None:
    member = await add_member(server.runtime)
    await record(server.runtime, "enquiry.created", enquiry("a"), workspace_id=member.workspace_id)
    latest = await record(
        server.runtime, "enquiry.created", enquiry("b"), workspace_id=member.workspace_id
    )

    ws, ready = await connect_member(server, member)

    assert ready["last_event_id"] == str(latest)
    await assert_quiet(ws)
    await ws.close()


async def test_other_workspace_receives_nothing(server: Server) -> None:
    first = await add_member(server.runtime)
    second = await add_member(server.runtime)
    first_ws, _ = await connect_member(server, first)
    second_ws, _ = await connect_member(server, second)

    hidden = await record(
        server.runtime, "enquiry.created", enquiry("first's"), workspace_id=first.workspace_id
    )
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("second's"), workspace_id=second.workspace_id
    )

    # Events are dispatched in position order, so the marker arriving first proves that the
    # earlier event of the other workspace was skipped.
    assert (await receive(second_ws))["id"] == str(marker)
    await assert_quiet(second_ws)
    assert (await receive(first_ws))["id"] == str(hidden)
    await assert_quiet(first_ws)
    await first_ws.close()
    await second_ws.close()


async def test_notification_only_to_its_user(server: Server) -> None:
    recipient = await add_member(server.runtime)
    colleague = await add_member(server.runtime, workspace_id=recipient.workspace_id)
    # The recipient also belongs to another workspace; its notifications stay there.
    elsewhere = await add_member(server.runtime, user_id=recipient.user_id)
    recipient_ws, _ = await connect_member(server, recipient)
    colleague_ws, _ = await connect_member(server, colleague)

    notification = {"id": str(uuid.uuid4()), "type": "enquiry.created", "read_at": None}
    other_workspace = await record(
        server.runtime,
        "notification.created",
        {**notification, "id": str(uuid.uuid4())},
        workspace_id=elsewhere.workspace_id,
        user_id=recipient.user_id,
    )
    targeted = await record(
        server.runtime,
        "notification.created",
        notification,
        workspace_id=recipient.workspace_id,
        user_id=recipient.user_id,
    )
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("marker"), workspace_id=recipient.workspace_id
    )

    recipient_frames = [await receive(recipient_ws), await receive(recipient_ws)]
    assert event_ids(recipient_frames) == [targeted, marker]
    assert other_workspace not in event_ids(recipient_frames)
    assert recipient_frames[0]["event"] == "notification.created"
    assert recipient_frames[0]["data"] == notification
    assert (await receive(colleague_ws))["id"] == str(marker)
    await assert_quiet(colleague_ws)
    await recipient_ws.close()
    await colleague_ws.close()


async def test_internal_events_not_sent(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    await record(
        server.runtime,
        "internal.sessions_revoked",
        {"session_ids": [str(uuid.uuid4())]},
        workspace_id=None,
        user_id=member.user_id,
    )
    await record(
        server.runtime,
        "internal.member_removed",
        {"user_id": str(uuid.uuid4())},
        workspace_id=member.workspace_id,
    )
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("marker"), workspace_id=member.workspace_id
    )

    assert (await receive(ws))["id"] == str(marker)
    await ws.close()


@pytest.mark.parametrize("realtime_settings", [{"realtime_poll_interval_seconds": 0.2}])
async def test_poll_delivers_without_signal(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    # Commit and sequence without publishing, as when a NOTIFY is lost: only the poll finds it.
    async with server.runtime.sessionmaker() as session:
        event = Event(
            name="enquiry.created",
            data=enquiry("unannounced"),
            workspace_id=member.workspace_id,
            created_at=server.clock.now(),
        )
        session.add(event)
        await session.commit()
    position = await sequence_pending_events(server.runtime.sessionmaker)

    frame = await receive(ws)

    assert frame["id"] == str(position)
    await ws.close()


def count_event_reads(runtime: Runtime) -> list[str]:
    """Collect the dispatcher's reads of new events from the table."""
    reads: list[str] = []

    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().startswith("SELECT") and "events.position >" in statement:
            reads.append(statement)

    sa.event.listen(runtime.read_engine.sync_engine, "before_cursor_execute", before)
    return reads


@pytest.mark.parametrize("realtime_settings", [{"realtime_poll_interval_seconds": 600}])
async def test_own_events_skip_the_read(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)
    # The dispatcher reads the table once after it starts, for events committed meanwhile.
    await record(
        server.runtime, "enquiry.created", enquiry("warm"), workspace_id=member.workspace_id
    )
    await receive(ws)
    reads = count_event_reads(server.runtime)

    positions = [
        await record(
            server.runtime, "enquiry.created", enquiry(f"own {n}"), workspace_id=member.workspace_id
        )
        for n in range(3)
    ]
    frames = [await receive(ws) for _ in positions]

    assert event_ids(frames) == positions
    assert [f["data"]["subject"] for f in frames] == ["own 0", "own 1", "own 2"]
    assert reads == []
    await ws.close()


@pytest.mark.parametrize("realtime_settings", [{"realtime_poll_interval_seconds": 600}])
async def test_gap_before_own_event_read(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)
    reads = count_event_reads(server.runtime)

    # Committed and numbered as by another process, whose signal has not arrived.
    async with server.runtime.sessionmaker() as session:
        session.add(
            Event(
                name="enquiry.created",
                data=enquiry("elsewhere"),
                workspace_id=member.workspace_id,
                created_at=server.clock.now(),
            )
        )
        await session.commit()
    elsewhere = await sequence_pending_events(server.runtime.sessionmaker)
    own = await record(
        server.runtime, "enquiry.created", enquiry("own"), workspace_id=member.workspace_id
    )
    frames = [await receive(ws), await receive(ws)]

    assert event_ids(frames) == [elsewhere, own]
    assert [f["data"]["subject"] for f in frames] == ["elsewhere", "own"]
    assert len(reads) >= 1
    await ws.close()


# Resume and resync


async def test_resume_replays_missed_events(server: Server) -> None:
    member = await add_member(server.runtime)
    other = await add_member(server.runtime, workspace_id=member.workspace_id)
    stranger = await add_member(server.runtime)
    ws, ready = await connect_member(server, member)
    await ws.close()

    missed = [
        await record(
            server.runtime,
            "enquiry.created",
            enquiry(f"missed {n}"),
            workspace_id=member.workspace_id,
        )
        for n in range(3)
    ]
    await record(
        server.runtime, "enquiry.created", enquiry("not ours"), workspace_id=stranger.workspace_id
    )
    await record(
        server.runtime,
        "notification.created",
        {"id": str(uuid.uuid4())},
        workspace_id=member.workspace_id,
        user_id=other.user_id,
    )
    mine = await record(
        server.runtime,
        "notification.created",
        {"id": str(uuid.uuid4())},
        workspace_id=member.workspace_id,
        user_id=member.user_id,
    )

    ws, resumed = await connect_member(server, member, last_event_id=ready["last_event_id"])
    replayed = [await receive(ws) for _ in range(4)]
    live = await record(
        server.runtime, "enquiry.updated", enquiry("live"), workspace_id=member.workspace_id
    )

    assert resumed["last_event_id"] == str(mine)
    assert event_ids(replayed) == [*missed, mine]
    assert event_ids([await receive(ws)]) == [live]
    await assert_quiet(ws)
    await ws.close()


async def test_resume_joins_live_without_gaps(server: Server) -> None:
    """Events recorded while a client resumes arrive once each, in order, with no gap."""
    member = await add_member(server.runtime)
    start = await record(
        server.runtime, "enquiry.created", enquiry("start"), workspace_id=member.workspace_id
    )
    total = 30

    async def produce() -> list[int]:
        positions = []
        for n in range(total):
            positions.append(
                await record(
                    server.runtime,
                    "enquiry.updated",
                    enquiry(f"update {n}"),
                    workspace_id=member.workspace_id,
                )
            )
            await asyncio.sleep(0.01)
        return positions

    producer = asyncio.create_task(produce())
    await asyncio.sleep(0.05)
    ws, ready = await connect_member(server, member, last_event_id=str(start))
    produced = await asyncio.wait_for(producer, 2 * WAIT)
    frames = await receive_until(ws, lambda frame: frame.get("id") == str(produced[-1]))

    # Some events came through the replay and the rest live: the join was exercised.
    assert start < int(ready["last_event_id"]) < produced[-1]
    assert event_ids(frames) == produced
    await assert_quiet(ws)
    await ws.close()


async def test_resume_after_out_of_order_commits(server: Server) -> None:
    """A transaction that commits last gets the higher position, whatever its insertion id."""
    runtime = server.runtime
    member = await add_member(runtime)
    ws, _ = await connect_member(server, member)

    # Units of work insert their events at the commit, under the numbering lock, so their
    # insertion ids follow commit order. Rows written otherwise can commit out of insertion
    # order. Here T1's row has the lower id but is committed and sequenced after T2's.
    async with runtime.sessionmaker() as session:
        reserved = await session.scalar(sa.select(sa.func.coalesce(sa.func.max(Event.id), 0)))
    assert reserved is not None
    first_id, second_id = reserved + 1, reserved + 2

    async def commit_row(event_id: int, subject: str) -> None:
        async with runtime.sessionmaker() as session:
            session.add(
                Event(
                    id=event_id,
                    name="enquiry.created",
                    data=enquiry(subject),
                    workspace_id=member.workspace_id,
                    created_at=server.clock.now(),
                )
            )
            await session.commit()
        await runtime.publish_pending_events()

    await commit_row(second_id, "T2")
    seen_frame = await receive(ws)
    await ws.close()
    await commit_row(first_id, "T1")

    first_position = await position_of(runtime, first_id)
    second_position = await position_of(runtime, second_id)
    assert first_id < second_id
    assert second_position < first_position
    assert seen_frame["id"] == str(second_position)
    assert seen_frame["data"]["subject"] == "T2"

    ws, _ = await connect_member(server, member, last_event_id=seen_frame["id"])
    replayed = await receive(ws)

    assert replayed["id"] == str(first_position)
    assert replayed["data"]["subject"] == "T1"
    await assert_quiet(ws)
    await ws.close()


@pytest.mark.parametrize("case", ["aged", "pruned", "malformed", "future", "negative"])
async def test_resume_beyond_window_resyncs(server: Server, case: str) -> None:
    member = await add_member(server.runtime)
    seen = await record(
        server.runtime, "enquiry.created", enquiry("seen"), workspace_id=member.workspace_id
    )
    last_event_id = {
        "aged": str(seen),
        "pruned": str(seen),
        "malformed": "abc",
        "future": str(seen + 100),
        "negative": "-1",
    }[case]
    if case == "aged":
        server.clock.advance(seconds=server.runtime.settings.event_replay_window_seconds + 1)
        member = fresh_token(server, member)
    latest = await record(
        server.runtime, "enquiry.updated", enquiry("missed"), workspace_id=member.workspace_id
    )
    if case == "pruned":
        async with server.runtime.sessionmaker() as session:
            await session.execute(sa.delete(Event).where(Event.position == seen))
            await session.commit()

    ws, ready = await connect_member(server, member, last_event_id=last_event_id)
    resync = await receive(ws)
    live = await record(
        server.runtime, "enquiry.updated", enquiry("live"), workspace_id=member.workspace_id
    )

    assert ready["last_event_id"] == str(latest)
    assert resync == {"type": "resync", "last_event_id": str(latest)}
    assert (await receive(ws))["id"] == str(live)
    await ws.close()


async def test_resume_within_window_replays(server: Server) -> None:
    """The window boundary: an event just inside the window still allows a replay."""
    member = await add_member(server.runtime)
    seen = await record(
        server.runtime, "enquiry.created", enquiry("seen"), workspace_id=member.workspace_id
    )
    server.clock.advance(seconds=server.runtime.settings.event_replay_window_seconds - 1)
    member = fresh_token(server, member)
    missed = await record(
        server.runtime, "enquiry.updated", enquiry("missed"), workspace_id=member.workspace_id
    )

    ws, _ = await connect_member(server, member, last_event_id=str(seen))

    assert (await receive(ws))["id"] == str(missed)
    await ws.close()


async def test_replay_over_limit_resyncs(server: Server) -> None:
    member = await add_member(server.runtime)
    seen = await record(
        server.runtime, "enquiry.created", enquiry("seen"), workspace_id=member.workspace_id
    )
    async with unit_of_work(server.runtime) as uow:
        for n in range(REPLAY_LIMIT + 1):
            uow.record_event("enquiry.updated", {"n": n}, workspace_id=member.workspace_id)

    ws, ready = await connect_member(server, member, last_event_id=str(seen))

    assert ready["last_event_id"] == str(seen + REPLAY_LIMIT + 1)
    assert (await receive(ws))["type"] == "resync"
    await assert_quiet(ws)
    await ws.close()


async def test_resume_at_latest_sends_nothing(server: Server) -> None:
    member = await add_member(server.runtime)
    seen = await record(
        server.runtime, "enquiry.created", enquiry("seen"), workspace_id=member.workspace_id
    )

    ws, ready = await connect_member(server, member, last_event_id=str(seen))

    assert ready["last_event_id"] == str(seen)
    await assert_quiet(ws)
    await ws.close()


async def test_prune_keeps_highest_position(server: Server) -> None:
    """Pruning every old event must not let the sequencer hand out seen positions again."""
    member = await add_member(server.runtime)
    await record(
        server.runtime, "enquiry.created", enquiry("old"), workspace_id=member.workspace_id
    )
    highest = await record(
        server.runtime, "enquiry.created", enquiry("older"), workspace_id=member.workspace_id
    )
    server.clock.advance(days=3)

    async with server.runtime.sessionmaker() as session:
        deleted = await prune_events(session, older_than=server.clock.now())
        await session.commit()
    following = await record(
        server.runtime, "enquiry.created", enquiry("new"), workspace_id=member.workspace_id
    )

    assert deleted == 1
    assert following == highest + 1


# Authentication and frames


@pytest.mark.parametrize("realtime_settings", [{"realtime_auth_timeout_seconds": 0.3}])
async def test_auth_timeout_closes(server: Server) -> None:
    ws = await open_socket(server)

    assert await close_code(ws) == 4001


@pytest.mark.parametrize("realtime_settings", [{"realtime_auth_timeout_seconds": 0.5}])
async def test_auth_timeout_counts_from_connect(server: Server) -> None:
    """Pings before the auth frame get pongs but do not extend the deadline."""
    ws = await open_socket(server)
    pongs = 0

    # Pinging every 0.1 s for up to 2 s: the connection must still close 0.5 s after opening.
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(2):
            while True:
                await ws.send(json.dumps({"type": "ping"}))
                assert await receive(ws) == {"type": "pong"}
                pongs += 1
                await asyncio.sleep(0.1)

    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4001
    assert 1 <= pongs < 10


async def test_invalid_tokens_close(server: Server) -> None:
    member = await add_member(server.runtime)
    outsider = await add_member(server.runtime)
    revoked = await add_member(server.runtime, workspace_id=member.workspace_id)
    async with server.runtime.sessionmaker() as session:
        login = await session.get(AuthSession, revoked.session_id)
        assert login is not None
        login.revoked_at = server.clock.now()
        await session.commit()
    cases = {
        "garbage": ("not-a-token", 4003),
        "missing": (None, 4003),
        "expired": (
            token_for(
                server.runtime,
                member.user_id,
                member.session_id,
                member.workspace_id,
                issued_ago=timedelta(hours=2),
            ),
            4003,
        ),
        "revoked session": (revoked.token, 4003),
        "no workspace": (
            token_for(server.runtime, member.user_id, member.session_id, None),
            4004,
        ),
        "not a member": (
            token_for(server.runtime, member.user_id, member.session_id, outsider.workspace_id),
            4004,
        ),
    }
    for name, (token, expected) in cases.items():
        ws = await open_socket(server)
        frame: dict[str, Any] = {"type": "auth"}
        if token is not None:
            frame["token"] = token
        await ws.send(json.dumps(frame))
        assert await close_code(ws) == expected, name


async def test_bad_frames_get_errors(server: Server) -> None:
    member = await add_member(server.runtime)
    ws = await open_socket(server)
    await ws.send("{not json")
    before_auth = await receive(ws)
    await authenticate(ws, member.token)

    await ws.send(json.dumps({"type": "shout"}))
    unknown = await receive(ws)
    await ws.send(json.dumps(["auth"]))
    not_object = await receive(ws)
    await ws.send(b"\x00\x01")
    binary = await receive(ws)
    await ws.send(json.dumps({"type": "auth", "token": member.token}))
    again = await receive(ws)
    await ws.send(json.dumps({"type": "ping"}))
    pong = await receive(ws)

    assert before_auth["type"] == "error"
    assert before_auth["code"] == "invalid_json"
    assert unknown["type"] == "error"
    assert unknown["code"] == "unknown_type"
    assert unknown["message"]
    assert not_object["code"] == "invalid_frame"
    assert binary["code"] == "binary_not_supported"
    assert again["code"] == "already_authenticated"
    assert pong == {"type": "pong"}
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("still open"), workspace_id=member.workspace_id
    )
    assert (await receive(ws))["id"] == str(marker)
    await ws.close()


def test_auth_frame_bad_last_event_id_named() -> None:
    error = parse_client_frame(json.dumps({"type": "auth", "token": "t", "last_event_id": [1]}))

    assert isinstance(error, FrameError)
    assert (error.code, error.field) == ("invalid_frame", "last_event_id")


async def test_many_invalid_frames_close(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    for _ in range(10):
        await ws.send("nonsense")
        assert (await receive(ws))["code"] == "invalid_json"
    await ws.send("nonsense")

    assert await close_code(ws) == 4008


async def test_frame_flood_closes(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    for _ in range(121):
        await ws.send(json.dumps({"type": "ping"}))

    assert await close_code(ws) == 4008


async def test_oversized_frame_closes(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    await ws.send(json.dumps({"type": "ping", "padding": "x" * MAX_FRAME_BYTES}))

    assert await close_code(ws) == 4009


async def test_logout_closes_socket(server: Server) -> None:
    member = await add_member(server.runtime)
    other_device = await add_member(
        server.runtime, workspace_id=member.workspace_id, user_id=member.user_id
    )
    ws, _ = await connect_member(server, member)
    other_ws, _ = await connect_member(server, other_device)

    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        response = await http.post(
            "/api/v1/auth/logout", headers={"Authorization": f"Bearer {member.token}"}
        )

    assert response.status_code == 204, response.text
    assert await close_code(ws, timeout=2.0) == 4003
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("marker"), workspace_id=member.workspace_id
    )
    assert (await receive(other_ws))["id"] == str(marker)
    await other_ws.close()


async def test_revoked_session_event_closes_socket(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)

    await record(
        server.runtime,
        "internal.sessions_revoked",
        {"session_ids": [str(member.session_id)]},
        workspace_id=None,
        user_id=member.user_id,
    )

    assert await close_code(ws, timeout=2.0) == 4003


async def test_member_removal_closes_socket(server: Server) -> None:
    member = await add_member(server.runtime)
    elsewhere = await add_member(server.runtime, user_id=member.user_id)
    ws, _ = await connect_member(server, member)
    elsewhere_ws, _ = await connect_member(server, elsewhere)

    await record(
        server.runtime,
        "internal.member_removed",
        {"user_id": str(member.user_id)},
        workspace_id=member.workspace_id,
    )

    assert await close_code(ws, timeout=2.0) == 4004
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("marker"), workspace_id=elsewhere.workspace_id
    )
    assert (await receive(elsewhere_ws))["id"] == str(marker)
    await elsewhere_ws.close()


async def test_leaving_workspace_closes_socket(server: Server) -> None:
    leaver = await add_member(server.runtime)
    colleague = await add_member(server.runtime, workspace_id=leaver.workspace_id)
    ws, _ = await connect_member(server, leaver)
    colleague_ws, _ = await connect_member(server, colleague)

    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        response = await http.delete(
            f"/api/v1/members/{leaver.user_id}",
            headers={"Authorization": f"Bearer {leaver.token}"},
        )

    assert response.status_code == 204, response.text
    removed = await receive(ws)
    assert removed["event"] == "member.removed"
    assert removed["data"]["user_id"] == str(leaver.user_id)
    assert await close_code(ws, timeout=2.0) == 4004
    assert (await receive(colleague_ws))["event"] == "member.removed"
    await assert_quiet(colleague_ws)
    await colleague_ws.close()


@pytest.mark.parametrize("realtime_settings", [{"realtime_poll_interval_seconds": 0.1}])
async def test_session_expiry_closes(server: Server) -> None:
    member = await add_member(server.runtime, session_ttl=timedelta(minutes=5))
    ws, _ = await connect_member(server, member)

    server.clock.advance(minutes=4)
    await assert_quiet(ws)
    server.clock.advance(minutes=2)

    assert await close_code(ws, timeout=2.0) == 4003


# Limits and shutdown


@pytest.mark.parametrize("realtime_settings", [{"realtime_send_queue_size": 2}])
async def test_slow_consumer_disconnected(server: Server) -> None:
    member = await add_member(server.runtime)
    # max_queue=1 makes the client stop reading from its socket after one unread frame, so the
    # kernel buffers fill, the server's sends block and its queue overflows.
    slow = await open_socket(server, max_queue=1, compression=None, max_size=None)
    await authenticate(slow, member.token)
    [slow_connection] = server.gateway.connections
    healthy, _ = await connect_member(server, member)

    payload = os.urandom(32 * 1024).hex()
    recorded = 0
    async with asyncio.timeout(20):
        while not slow_connection.closing.is_set():
            async with unit_of_work(server.runtime) as uow:
                for _ in range(20):
                    uow.record_event(
                        "enquiry.updated", {"blob": payload}, workspace_id=member.workspace_id
                    )
            recorded += 20
            await asyncio.sleep(0.05)
            # The healthy client keeps reading everything.
            while True:
                try:
                    await asyncio.wait_for(healthy.recv(), 0.01)
                except TimeoutError:
                    break

    assert slow_connection.close_code == 4010
    assert await close_code(slow, timeout=10) == 4010
    async with httpx.AsyncClient(base_url=server.live.http_url, trust_env=False) as http:
        assert (await http.get("/healthz")).status_code == 200
    marker = await record(
        server.runtime, "enquiry.updated", enquiry("marker"), workspace_id=member.workspace_id
    )
    frames = await receive_until(healthy, lambda frame: frame.get("id") == str(marker))
    assert frames[-1]["id"] == str(marker)
    assert recorded > 2
    await healthy.close()


async def test_stop_closes_with_going_away(server: Server) -> None:
    member = await add_member(server.runtime)
    ws, _ = await connect_member(server, member)
    unauthenticated = await open_socket(server)
    await asyncio.sleep(0.05)

    await server.gateway.stop()
    late = await open_socket(server)

    assert await close_code(ws) == 1001
    assert await close_code(unauthenticated) == 1001
    assert await close_code(late) == 1001
    assert server.gateway.connections == []


# End to end


async def sign_up_with_form(http: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sign up an owner through the API and create a published form; return both bodies."""
    signup = await http.post(
        "/api/v1/auth/signup",
        json={
            "email": f"owner-{uuid.uuid4().hex[:8]}@example.com",
            "password": "correct horse battery staple",
            "full_name": "Studio Owner",
            "workspace_name": "Studio Lumen",
        },
    )
    assert signup.status_code == 201, signup.text
    tokens: dict[str, Any] = signup.json()
    form = await http.post(
        "/api/v1/forms",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        json={
            "name": "Contact",
            "fields": [
                {"key": "name", "type": "text", "label": "Name", "required": True},
                {"key": "email", "type": "email", "label": "Email", "required": True},
                {"key": "message", "type": "long_text", "label": "Message"},
            ],
        },
    )
    assert form.status_code == 201, form.text
    return tokens, form.json()


async def submit_form(http: httpx.AsyncClient, form: dict[str, Any]) -> None:
    response = await http.post(
        httpx.URL(form["public_url"]).path,
        json={"name": "Camille", "email": "camille@example.org", "message": "A quote, please."},
    )
    assert response.status_code == 201, response.text


async def test_form_submission_reaches_client(server: Server) -> None:
    async with httpx.AsyncClient(
        base_url=server.live.http_url, timeout=10, trust_env=False
    ) as http:
        tokens, form = await sign_up_with_form(http)
        ws = await open_socket(server)
        ready = await authenticate(ws, tokens["access_token"])

        await submit_form(http, form)
        frames = await receive_until(ws, lambda frame: frame.get("event") == "enquiry.created")
        created = frames[-1]
        enquiry_id = created["data"]["id"]
        fetched = await http.get(
            f"/api/v1/enquiries/{enquiry_id}",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )

    assert ready["workspace_id"] == tokens["workspace"]["id"]
    assert ready["role"] == "owner"
    assert int(created["id"]) > int(ready["last_event_id"])
    assert created["data"]["form_id"] == form["id"]
    assert fetched.status_code == 200, fetched.text
    assert created["data"] == fetched.json()
    await ws.close()


# Several processes


async def test_event_crosses_processes(database_url: str, tmp_path: Path) -> None:
    """A client of process B receives the enquiry submitted to process A, through NOTIFY."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share events through Postgres LISTEN/NOTIFY")
    await cross_processes(database_url, tmp_path, broker="postgres")


async def test_event_crosses_processes_redis(
    database_url: str, tmp_path: Path, redis_url: str
) -> None:
    """The same through Redis pub/sub, with the rate limits counted in Redis too."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes share one database on Postgres")
    await cross_processes(
        database_url,
        tmp_path,
        broker="redis",
        redis_url=redis_url,
        rate_limit_store="redis",
    )


async def cross_processes(database_url: str, tmp_path: Path, **settings: str) -> None:
    await truncate_all(database_url)
    secret_key = "cluster-" + uuid.uuid4().hex

    def environment(name: str) -> dict[str, str]:
        return server_environment(
            database_url=database_url,
            data_dir=tmp_path / name,
            secret_key=secret_key,
            # Far longer than the test waits: delivery within WAIT proves the broker path.
            realtime_poll_interval_seconds="600",
            realtime_presence_grace_seconds=str(PRESENCE_GRACE),
            realtime_presence_interval_seconds=str(PRESENCE_INTERVAL),
            **settings,
        )

    async with (
        run_subprocess_server(environment("a"), tmp_path / "a.log") as process_a,
        run_subprocess_server(environment("b"), tmp_path / "b.log") as process_b,
        httpx.AsyncClient(base_url=process_a.http_url, timeout=10, trust_env=False) as http,
    ):
        tokens, form = await sign_up_with_form(http)
        url_b = f"{process_b.ws_url}/api/v1/realtime"
        url_a = f"{process_a.ws_url}/api/v1/realtime"
        client_b = await connect(url_b, open_timeout=WAIT, proxy=None)
        client_a = await connect(url_a, open_timeout=WAIT, proxy=None)
        await authenticate(client_b, tokens["access_token"])
        await authenticate(client_a, tokens["access_token"])

        await submit_form(http, form)
        try:
            frames_b = await receive_until(
                client_b, lambda frame: frame.get("event") == "enquiry.created"
            )
        except TimeoutError:
            pytest.fail("process B delivered nothing:\n" + process_b.output())
        frames_a = await receive_until(
            client_a, lambda frame: frame.get("event") == "enquiry.created"
        )

        assert frames_b[-1] == frames_a[-1]
        assert event_ids(frames_b) == event_ids(frames_a)

        helper = build_runtime(
            make_settings(database_url, tmp_path / "helper", secret_key=secret_key)
        )
        try:
            workspace_id = uuid.UUID(tokens["workspace"]["id"])
            await chat_crosses_processes(helper, workspace_id, tokens, url_a, url_b)

            # A logout on process A closes the socket on process B as well.
            logout = await http.post(
                "/api/v1/auth/logout",
                headers={"Authorization": f"Bearer {tokens['access_token']}"},
            )
            assert logout.status_code == 204, logout.text
            assert await close_code(client_b) == 4003
            assert await close_code(client_a) == 4003

            await presence_survives_crash(helper, workspace_id, url_a, url_b, process_b)
        finally:
            await helper.close()


# Short presence timings for the processes above, in seconds.
PRESENCE_GRACE = 1.0
PRESENCE_INTERVAL = 1.0


async def chat_crosses_processes(
    helper: Runtime, workspace_id: uuid.UUID, tokens: dict[str, Any], url_a: str, url_b: str
) -> None:
    """Messages, typing, read positions and presence pass between processes A and B."""
    # test_realtime_chat imports this module, so its helpers are imported when needed.
    from test_realtime_chat import add_visitor, connect_client, is_message_event, start_conversation

    visitor = await add_visitor(helper, workspace_id)
    conversation = await start_conversation(helper, workspace_id, visitor.id)
    colleague = await add_member(helper, workspace_id=workspace_id)
    cid = str(conversation)
    staff = await connect_client(url_a, tokens["access_token"])
    guest = await connect_client(url_b, visitor.token)
    await staff.subscribe(conversation)
    await guest.subscribe(conversation)

    await guest.send({"type": "typing", "conversation_id": cid, "state": "start"})
    guest_typing = await staff.frame("typing")
    sent_on_b = await guest.send_message(conversation, "Hello from B")
    arrived_on_a = await staff.next(is_message_event("Hello from B"))
    await staff.send({"type": "read", "conversation_id": cid, "seq": 1})
    staff_read = await guest.event("conversation.read")
    sent_on_a = await staff.send_message(conversation, "Hello from A")
    arrived_on_b = await guest.next(is_message_event("Hello from A"))
    await guest.send({"type": "read", "conversation_id": cid, "seq": 2})
    guest_read = await staff.next(
        lambda f: (
            f.get("event") == "conversation.read" and f["data"]["participant"]["type"] == "visitor"
        )
    )
    await staff.send({"type": "typing", "conversation_id": cid, "state": "start"})
    staff_typing = await guest.frame("typing", state="start")
    await staff.close()
    typing_stopped = await guest.frame("typing", state="stop")

    assert guest_typing["participant"] == {
        "type": "visitor",
        "id": str(visitor.id),
        "name": "Camille",
    }
    assert sent_on_b["type"] == "sent"
    assert arrived_on_a["data"]["message"]["id"] == sent_on_b["message"]["id"]
    assert arrived_on_b["data"]["message"]["id"] == sent_on_a["message"]["id"]
    assert staff_read["data"]["participant"] == {"type": "staff", "id": None}
    assert staff_read["data"]["last_read_seq"] == 1
    assert guest_read["data"]["last_read_seq"] == 2
    assert staff_typing["participant"] == {"type": "staff", "name": "Studio Owner"}
    assert typing_stopped["participant"] == {"type": "staff", "name": "Studio Owner"}

    # Presence: a colleague on B is online for the owner on A, a move to A within the grace
    # period announces no offline, and leaving everywhere does.
    staff = await connect_client(url_a, tokens["access_token"])
    uid = str(colleague.user_id)
    on_b = await connect_client(url_b, colleague.token)
    online = await staff.frame("presence", user_id=uid)
    await on_b.close()
    on_a = await connect_client(url_a, colleague.token)
    await staff.no_frame(lambda f: f.get("type") == "presence", wait=PRESENCE_GRACE + 0.5)
    await on_a.close()
    offline = await staff.frame("presence", user_id=uid)

    assert online["status"] == "online"
    assert offline["status"] == "offline"
    await staff.close()
    await guest.close()


async def presence_survives_crash(
    helper: Runtime,
    workspace_id: uuid.UUID,
    url_a: str,
    url_b: str,
    process_b: SubprocessServer,
) -> None:
    """A process that dies stops counting: its members go offline on the others."""
    from test_realtime_chat import connect_client

    observer = await add_member(helper, workspace_id=workspace_id)
    colleague = await add_member(helper, workspace_id=workspace_id)
    watching = await connect_client(url_a, observer.token)
    on_b = await connect_client(url_b, colleague.token)
    online = await watching.frame("presence", user_id=str(colleague.user_id))

    process_b.kill()
    offline = await watching.frame("presence", user_id=str(colleague.user_id), timeout=15)

    assert online["status"] == "online"
    assert offline["status"] == "offline"
    await watching.close()
    with contextlib.suppress(ConnectionClosed):
        await on_b.close()
