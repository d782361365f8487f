"""Kernel pieces: event sequencing, envelope encryption, rate limits, secrets, backup."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from frontdesk import runtime as runtime_module
from frontdesk.config import Settings
from frontdesk.core.backup import backup_sqlite
from frontdesk.core.clock import FrozenClock
from frontdesk.core.crypto import DecryptionError, EnvelopeCipher, parse_keys
from frontdesk.core.errors import RateLimited
from frontdesk.core.events import events_after, number_pending_events, sequence_pending_events
from frontdesk.core.models import Event
from frontdesk.core.ratelimit import (
    DatabaseRateLimitStore,
    Limit,
    MemoryRateLimitStore,
    RateLimiter,
)
from frontdesk.core.secrets import MissingSecretError, resolve_secrets
from frontdesk.core.uow import unit_of_work
from frontdesk.runtime import Runtime


def key_list(*ids: str) -> str:
    return ",".join(f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}" for key_id in ids)


async def test_sequencer_numbers_in_commit_order(runtime: Runtime) -> None:
    async with unit_of_work(runtime) as first:
        first.record_event("test.first", {"n": 1}, workspace_id=None)
    async with unit_of_work(runtime) as second:
        second.record_event("test.second", {"n": 2}, workspace_id=None)
        second.record_event("test.third", {"n": 3}, workspace_id=None)
    async with runtime.sessionmaker() as session:
        events = await events_after(session, 0, 10)
    assert [event.name for event in events] == ["test.first", "test.second", "test.third"]
    assert [event.position for event in events] == [1, 2, 3]


async def test_commit_numbers_own_events(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commit numbers the events it records, so no sequencer transaction follows."""
    sequencer_runs: list[int] = []

    async def counting(sessionmaker: Any) -> dict[int, int]:
        sequencer_runs.append(1)
        return await number_pending_events(sessionmaker)

    monkeypatch.setattr(runtime_module, "number_pending_events", counting)

    async def record(n: int) -> None:
        async with unit_of_work(runtime) as uow:
            uow.record_event("test.concurrent", {"n": n}, workspace_id=None)

    await asyncio.gather(*(record(n) for n in range(12)))
    async with runtime.sessionmaker() as session:
        events = await events_after(session, 0, 20)

    assert sorted(event.position for event in events) == list(range(1, 13))
    assert sorted(event.data["n"] for event in events) == list(range(12))
    assert sequencer_runs == []


async def test_commit_publishes_its_position(runtime: Runtime) -> None:
    """Each commit with events makes the broker announce a position covering them."""
    published: list[int] = []
    runtime.broker.subscribe(published.append)
    try:
        async with unit_of_work(runtime) as uow:
            uow.record_event("test.one", {}, workspace_id=None)
            uow.record_event("test.two", {}, workspace_id=None)
        async with runtime.sessionmaker() as session:
            positions = [event.position for event in await events_after(session, 0, 10)]
    finally:
        runtime.broker.unsubscribe(published.append)

    assert positions == [1, 2]
    assert published[-1:] == [2]


async def test_sequencer_skips_uncommitted_events(runtime: Runtime) -> None:
    """An event inserted earlier but committed later gets the later position."""
    if runtime.settings.is_sqlite:
        pytest.skip("SQLite runs one write transaction at a time; Postgres shows the interleaving")
    early = runtime.sessionmaker()
    early.add(
        Event(name="test.early_insert", data={}, workspace_id=None, created_at=runtime.clock.now())
    )
    await early.flush()
    async with unit_of_work(runtime) as late:
        late.record_event("test.late_insert", {}, workspace_id=None)
    await early.commit()
    await early.close()
    await sequence_pending_events(runtime.sessionmaker)
    async with runtime.sessionmaker() as session:
        events = await events_after(session, 0, 10)
    assert [event.name for event in events] == ["test.late_insert", "test.early_insert"]
    assert events[0].id > events[1].id
    assert [event.position for event in events] == [1, 2]


async def test_rolled_back_event_is_never_sequenced(runtime: Runtime) -> None:
    with pytest.raises(ValueError, match="change failed"):
        async with unit_of_work(runtime) as uow:
            uow.record_event("test.rolled_back", {}, workspace_id=None)
            raise ValueError("change failed")
    await sequence_pending_events(runtime.sessionmaker)
    async with runtime.sessionmaker() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(Event)) == 0


def test_envelope_round_trip_and_rotation() -> None:
    old = EnvelopeCipher(parse_keys(key_list("k1")))
    token = old.encrypt_text("sk_live_secret", associated_data=b"workspace-1")
    assert "sk_live_secret" not in token
    assert old.decrypt_text(token, associated_data=b"workspace-1") == "sk_live_secret"
    rotated = EnvelopeCipher([*parse_keys(key_list("k2")), *old._by_id.values()])
    assert rotated.primary_key_id == "k2"
    assert rotated.decrypt_text(token, associated_data=b"workspace-1") == "sk_live_secret"


def test_envelope_rejects_tampering_and_wrong_context() -> None:
    cipher = EnvelopeCipher(parse_keys(key_list("k1")))
    token = cipher.encrypt_text("secret", associated_data=b"a")
    with pytest.raises(DecryptionError):
        cipher.decrypt_text(token, associated_data=b"b")
    with pytest.raises(DecryptionError):
        cipher.decrypt_text(token[:-4] + "AAAA", associated_data=b"a")
    other = EnvelopeCipher(parse_keys(key_list("k9")))
    with pytest.raises(DecryptionError, match="no key with id"):
        other.decrypt_text(token, associated_data=b"a")


def test_parse_keys_rejects_short_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_keys("k1:" + base64.b64encode(b"short").decode())


@pytest.mark.parametrize("store_kind", ["memory", "database"])
async def test_rate_limit_window(runtime: Runtime, clock: FrozenClock, store_kind: str) -> None:
    store = (
        MemoryRateLimitStore()
        if store_kind == "memory"
        else DatabaseRateLimitStore(runtime.sessionmaker)
    )
    limiter = RateLimiter(store, clock)
    limit = Limit("login", 3, 60)
    for _ in range(3):
        await limiter.check((limit, "203.0.113.1"))
    with pytest.raises(RateLimited) as raised:
        await limiter.check((limit, "203.0.113.1"))
    assert 1 <= int(raised.value.headers["Retry-After"]) <= 60
    await limiter.check((limit, "203.0.113.2"))
    clock.advance(seconds=61)
    await limiter.check((limit, "203.0.113.1"))


def test_secrets_generated_on_embedded_default(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    first = resolve_secrets(settings)
    second = resolve_secrets(settings)
    assert first.key_file == tmp_path / "secret-keys.json"
    assert first.secret_key == second.secret_key
    assert oct((tmp_path / "secret-keys.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    "overrides",
    [
        {"env": "production"},
        {"database_url": "postgresql+asyncpg://postgres@127.0.0.1/test"},
        {"env": "production", "secret_key": "configured-" + "k" * 32},
    ],
)
def test_secrets_required_outside_embedded(tmp_path: Path, overrides: dict[str, str]) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, **overrides)  # type: ignore[call-arg]
    with pytest.raises(MissingSecretError, match="FRONTDESK_ENCRYPTION_KEYS"):
        resolve_secrets(settings)
    assert not (tmp_path / "secret-keys.json").exists()


def test_short_secret_key_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        Settings(_env_file=None, data_dir=tmp_path, secret_key="too-short")  # type: ignore[call-arg]


def test_backup_copies_live_database(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    writer = sqlite3.connect(source)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE items (n INTEGER)")
    writer.executemany("INSERT INTO items VALUES (?)", [(n,) for n in range(1000)])
    writer.commit()
    # A write transaction stays open during the backup; the copy holds only committed rows.
    writer.execute("BEGIN")
    writer.execute("INSERT INTO items VALUES (-1)")
    pages = backup_sqlite(source, tmp_path / "copy.db")
    writer.rollback()
    writer.close()
    assert pages > 0
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT count(*), min(n) FROM items").fetchone() == (1000, 0)
    assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    copy.close()


def test_backup_refuses_same_file(tmp_path: Path) -> None:
    source = tmp_path / "live.db"
    sqlite3.connect(source).close()
    with pytest.raises(ValueError, match="must differ"):
        backup_sqlite(source, source)
