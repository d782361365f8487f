"""IMAP polling against a real Dovecot: order, exactly-once hand-over, failures, TLS.

Messages are third-party samples from tests/fixtures/corpus/email, appended over IMAP.
imaplib's APPEND converts every bare CR or LF to CRLF, as IMAP requires, so the bytes the
server stores and returns are the file with CRLF line endings.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from frontdesk.email import imap
from frontdesk.email.imap import (
    ImapAuthError,
    ImapMailboxError,
    ImapSettings,
    ImapTemporaryError,
    ImapTlsError,
    MailboxState,
    check_connection,
    current_state,
    encode_mailbox_name,
    poll_mailbox,
)
from imap_server import UNAVAILABLE_USERNAME, UTF8_USERNAME, DovecotServer, TestMailbox
from imap_server import imap_mailbox as imap_mailbox
from imap_server import imap_server as imap_server
from smtp_server import free_port

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "email"
MESSAGES = [
    "chatwoot/only_text.eml",
    "chatwoot/only_html.eml",  # CRLF line endings in the file
    "cpython/msg_02.txt",
    "mime-parser/m0001.txt",
    "flanker/bz2-attachment.eml",  # raw 8-bit bytes
    "chatwoot/mail_with_references.eml",  # no final newline
    "chatwoot/bounced_with_no_from.eml",  # ends inside a header
]
INITIAL = MailboxState(uidvalidity=None, last_uid=0)


def stored_form(raw: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def corpus_message(index: int) -> bytes:
    return (CORPUS / MESSAGES[index]).read_bytes()


class Recorder:
    """A message handler that records what it receives and can fail on one UID."""

    def __init__(self, *, fail_on: int | None = None) -> None:
        self.received: list[tuple[int, bytes]] = []
        self.fail_on = fail_on

    async def __call__(self, uid: int, raw: bytes) -> None:
        if uid == self.fail_on:
            raise RuntimeError("the handler failed")
        self.received.append((uid, raw))

    @property
    def uids(self) -> list[int]:
        return [uid for uid, _raw in self.received]


def append_corpus(mailbox: TestMailbox, indexes: range | list[int]) -> list[int]:
    return [mailbox.append(corpus_message(index)) for index in indexes]


class CuttingProxy:
    """A TCP proxy to Dovecot that stops forwarding once the server has sent ``marker``.

    The server's output is forwarded up to the end of the marker. Then the proxy closes both
    connections, or, with ``stall``, keeps them open and forwards nothing more. Without a
    marker it forwards everything. ``client_output`` records what the client sent.
    """

    def __init__(self, target_port: int, marker: bytes | None, *, stall: bool = False) -> None:
        self.target_port = target_port
        self.marker = marker
        self.stall = stall
        self.port = 0
        self.triggered = False
        self.client_output = bytearray()
        self._writers: list[asyncio.StreamWriter] = []

    async def _pump_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(65536):
            self.client_output += data
            writer.write(data)
            await writer.drain()

    async def _pump_to_client(
        self,
        reader: asyncio.StreamReader,
        client: asyncio.StreamWriter,
        upstream: asyncio.StreamWriter,
    ) -> None:
        seen = b""
        while chunk := await reader.read(65536):
            forwarded = len(seen)
            seen += chunk
            found = seen.find(self.marker) if self.marker is not None else -1
            if found < 0:
                client.write(chunk)
                await client.drain()
                continue
            client.write(seen[forwarded : found + len(self.marker or b"")])
            await client.drain()
            self.triggered = True
            if not self.stall:
                client.close()
                upstream.close()
            return

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers += [writer, upstream_writer]
        try:
            await asyncio.gather(
                self._pump_to_server(reader, upstream_writer),
                self._pump_to_client(upstream_reader, writer, upstream_writer),
            )
        except (ConnectionError, OSError):
            pass

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CuttingProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()
            await server.wait_closed()


def test_settings_default_port_by_security() -> None:
    tls = ImapSettings(host="imap.example.com", username="u", password="p")
    starttls = ImapSettings(
        host="imap.example.com", username="u", password="p", security="starttls"
    )
    explicit = ImapSettings(host="imap.example.com", port=1143, username="u", password="p")

    assert tls.security == "tls"
    assert tls.port == 993
    assert starttls.port == 143
    assert explicit.port == 1143
    assert tls.mailbox == "INBOX"
    assert tls.verify_certificate is True


@pytest.mark.parametrize(
    "overrides",
    [
        {"surprise": True},
        {"username": "user\r\nA1 DELETE INBOX"},
        {"password": "secret\nA1 DELETE INBOX"},
        {"mailbox": "INBOX\r\n"},
        {"security": "ssl"},
        {"port": 0},
    ],
)
def test_settings_reject_invalid(overrides: dict[str, object]) -> None:
    values: dict[str, object] = {"host": "imap.example.com", "username": "u", "password": "p"}
    values.update(overrides)

    with pytest.raises(ValidationError):
        ImapSettings(**values)  # type: ignore[arg-type]


def test_settings_hide_password() -> None:
    settings = ImapSettings(host="imap.example.com", username="u", password="hunter2-secret")

    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("INBOX", "INBOX"),
        ("Sent Items", "Sent Items"),
        ("A&B", "A&-B"),
        # The examples of RFC 3501, section 5.1.3.
        ("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
        ("Kunden Ärger", "Kunden &AMQ-rger"),
    ],
)
def test_mailbox_name_encoding(name: str, encoded: str) -> None:
    assert encode_mailbox_name(name) == encoded


async def test_poll_delivers_each_message_once(imap_mailbox: TestMailbox) -> None:
    uids = append_corpus(imap_mailbox, range(5))
    uidvalidity = imap_mailbox.uidvalidity()
    settings = imap_mailbox.settings()

    first = Recorder()
    state = await poll_mailbox(settings, INITIAL, first, batch_size=2)

    assert first.uids == uids
    assert uids == sorted(uids)
    for index, (_uid, raw) in enumerate(first.received):
        assert raw == stored_form(corpus_message(index)), MESSAGES[index]
    assert state == MailboxState(uidvalidity=uidvalidity, last_uid=uids[-1])

    second = Recorder()
    with capture_logs() as logs:
        unchanged = await poll_mailbox(settings, state, second, batch_size=2)

    assert second.received == []
    assert unchanged == state
    assert [entry["event"] for entry in logs] == []

    new_uids = append_corpus(imap_mailbox, [5, 6])
    third = Recorder()
    latest = await poll_mailbox(settings, unchanged, third, batch_size=2)

    assert third.uids == new_uids
    assert [raw for _uid, raw in third.received] == [
        stored_form(corpus_message(5)),
        stored_form(corpus_message(6)),
    ]
    assert latest == MailboxState(uidvalidity=uidvalidity, last_uid=new_uids[-1])


async def test_poll_leaves_flags_unchanged(imap_mailbox: TestMailbox) -> None:
    imap_mailbox.append(corpus_message(0), flags="\\Seen")
    imap_mailbox.append(corpus_message(1))
    imap_mailbox.append(corpus_message(2), flags="\\Flagged")
    before = imap_mailbox.flags()

    recorder = Recorder()
    await poll_mailbox(imap_mailbox.settings(), INITIAL, recorder)

    assert len(recorder.received) == 3
    assert imap_mailbox.flags() == before
    assert sorted(before.values(), key=sorted) == sorted(
        [frozenset({"\\Seen"}), frozenset(), frozenset({"\\Flagged"})], key=sorted
    )


async def test_poll_handler_failure_retries_message(imap_mailbox: TestMailbox) -> None:
    uids = append_corpus(imap_mailbox, range(5))
    uidvalidity = imap_mailbox.uidvalidity()
    settings = imap_mailbox.settings()

    failing = Recorder(fail_on=uids[2])
    with capture_logs() as logs:
        state = await poll_mailbox(settings, INITIAL, failing, batch_size=2)

    assert failing.uids == uids[:2]
    assert state == MailboxState(uidvalidity=uidvalidity, last_uid=uids[1])
    failures = [entry for entry in logs if entry["event"] == "email.imap.handler_failed"]
    assert failures == [
        {
            "event": "email.imap.handler_failed",
            "log_level": "error",
            "uid": uids[2],
            "uidvalidity": uidvalidity,
            "error_type": "RuntimeError",
        }
    ]

    retry = Recorder()
    final = await poll_mailbox(settings, state, retry, batch_size=2)

    assert retry.uids == uids[2:]
    assert final == MailboxState(uidvalidity=uidvalidity, last_uid=uids[-1])


@pytest.mark.parametrize("cut_index", [0, 2])
async def test_poll_dropped_connection_loses_nothing(
    imap_mailbox: TestMailbox, cut_index: int
) -> None:
    uids = append_corpus(imap_mailbox, range(5))
    uidvalidity = imap_mailbox.uidvalidity()
    expected = [stored_form(corpus_message(index)) for index in range(5)]
    # A stretch from the middle of one message, found in no other message of the mailbox.
    target = expected[cut_index]
    marker = target[len(target) // 2 : len(target) // 2 + 40]
    assert [marker in message for message in expected].count(True) == 1
    assert marker in target

    proxy = CuttingProxy(imap_mailbox.server.port, marker)
    interrupted = Recorder()
    async with proxy.running():
        with pytest.raises(ImapTemporaryError) as raised:
            await poll_mailbox(
                imap_mailbox.settings(port=proxy.port), INITIAL, interrupted, batch_size=2
            )

    assert proxy.triggered
    assert "UID FETCH failed" in str(raised.value)
    # Batches hold messages 1-2, 3-4 and 5, and a cut inside a batch loses the whole batch.
    handled_before = uids[: cut_index - cut_index % 2]
    assert interrupted.uids == handled_before
    assert raised.value.state == MailboxState(
        uidvalidity=uidvalidity, last_uid=handled_before[-1] if handled_before else 0
    )

    resumed = Recorder()
    state = await poll_mailbox(imap_mailbox.settings(), raised.value.state, resumed)

    assert resumed.uids == uids[len(handled_before) :]
    handled = interrupted.uids + resumed.uids
    assert handled == uids
    assert [raw for _uid, raw in interrupted.received + resumed.received] == expected
    assert state == MailboxState(uidvalidity=uidvalidity, last_uid=uids[-1])


async def test_poll_stalled_connection_times_out(imap_mailbox: TestMailbox) -> None:
    uids = append_corpus(imap_mailbox, range(3))
    target = stored_form(corpus_message(1))
    marker = target[len(target) // 2 : len(target) // 2 + 40]

    proxy = CuttingProxy(imap_mailbox.server.port, marker, stall=True)
    recorder = Recorder()
    async with proxy.running():
        settings = imap_mailbox.settings(port=proxy.port, timeout_seconds=0.5)
        with pytest.raises(ImapTemporaryError) as raised:
            await poll_mailbox(settings, INITIAL, recorder, batch_size=1)

    assert proxy.triggered
    assert "timed out" in str(raised.value)
    assert recorder.uids == uids[:1]
    assert raised.value.state is not None
    assert raised.value.state.last_uid == uids[0]


async def test_poll_uidvalidity_change_starts_over(imap_mailbox: TestMailbox) -> None:
    append_corpus(imap_mailbox, range(3))
    old_uidvalidity = imap_mailbox.uidvalidity()
    settings = imap_mailbox.settings()
    state = await poll_mailbox(settings, INITIAL, Recorder())
    assert state.last_uid == 3

    imap_mailbox.recreate()
    new_uids = append_corpus(imap_mailbox, [3, 4])
    new_uidvalidity = imap_mailbox.uidvalidity()
    assert new_uidvalidity != old_uidvalidity
    # The recreated mailbox numbers from 1 again, below the stored last_uid of 3.
    assert new_uids == [1, 2]

    recorder = Recorder()
    with capture_logs() as logs:
        restarted = await poll_mailbox(settings, state, recorder)

    assert recorder.uids == new_uids
    assert [raw for _uid, raw in recorder.received] == [
        stored_form(corpus_message(3)),
        stored_form(corpus_message(4)),
    ]
    assert restarted == MailboxState(uidvalidity=new_uidvalidity, last_uid=2)
    changes = [entry for entry in logs if entry["event"] == "email.imap.uidvalidity_changed"]
    assert changes == [
        {
            "event": "email.imap.uidvalidity_changed",
            "log_level": "warning",
            "previous_uidvalidity": old_uidvalidity,
            "previous_last_uid": 3,
            "uidvalidity": new_uidvalidity,
        }
    ]


async def test_poll_max_messages_bounds_one_poll(imap_mailbox: TestMailbox) -> None:
    uids = append_corpus(imap_mailbox, range(5))
    settings = imap_mailbox.settings()

    first = Recorder()
    state = await poll_mailbox(settings, INITIAL, first, max_messages=3)

    assert first.uids == uids[:3]
    assert state.last_uid == uids[2]

    second = Recorder()
    state = await poll_mailbox(settings, state, second, max_messages=3)

    assert second.uids == uids[3:]
    assert state.last_uid == uids[4]


async def test_poll_skips_uid_gaps(
    imap_mailbox: TestMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    uids = append_corpus(imap_mailbox, range(7))
    imap_mailbox.expunge(uids[1:4])
    # Windows of 2 UIDs make the search cross the gap in several commands.
    monkeypatch.setattr(imap, "MAX_SEARCH_WINDOW", 2)
    settings = imap_mailbox.settings()

    first = Recorder()
    state = await poll_mailbox(settings, INITIAL, first, max_messages=3)

    assert first.uids == [uids[0], uids[4], uids[5]]
    assert [raw for _uid, raw in first.received] == [
        stored_form(corpus_message(index)) for index in (0, 4, 5)
    ]
    assert state.last_uid == uids[5]

    second = Recorder()
    state = await poll_mailbox(settings, state, second, max_messages=3)

    assert second.uids == [uids[6]]
    assert state.last_uid == uids[6]


async def test_poll_batches_by_count(imap_mailbox: TestMailbox) -> None:
    uids = append_corpus(imap_mailbox, range(5))

    proxy = CuttingProxy(imap_mailbox.server.port, None)
    recorder = Recorder()
    async with proxy.running():
        settings = imap_mailbox.settings(port=proxy.port)
        await poll_mailbox(settings, INITIAL, recorder, batch_size=2)

    assert recorder.uids == uids
    assert bytes(proxy.client_output).count(b"(UID BODY.PEEK[])") == 3


@pytest.mark.parametrize(("limit_below_total", "fetches"), [(1, 2), (None, 5)])
async def test_poll_batches_by_size(
    imap_mailbox: TestMailbox,
    monkeypatch: pytest.MonkeyPatch,
    limit_below_total: int | None,
    fetches: int,
) -> None:
    uids = append_corpus(imap_mailbox, range(5))
    total = sum(len(stored_form(corpus_message(index))) for index in range(5))
    # One byte below the total splits the 5 messages in two FETCH commands. A limit of one
    # byte fetches each message alone, since every message is larger than the limit.
    limit = total - limit_below_total if limit_below_total is not None else 1
    monkeypatch.setattr(imap, "MAX_BATCH_BYTES", limit)

    proxy = CuttingProxy(imap_mailbox.server.port, None)
    recorder = Recorder()
    async with proxy.running():
        settings = imap_mailbox.settings(port=proxy.port)
        await poll_mailbox(settings, INITIAL, recorder)

    assert recorder.uids == uids
    assert [raw for _uid, raw in recorder.received] == [
        stored_form(corpus_message(index)) for index in range(5)
    ]
    assert bytes(proxy.client_output).count(b"(UID BODY.PEEK[])") == fetches


@pytest.mark.parametrize("options", [{"batch_size": 0}, {"max_messages": 0}])
async def test_poll_rejects_invalid_limits(options: dict[str, int]) -> None:
    settings = ImapSettings(host="127.0.0.1", username="u", password="p")

    with pytest.raises(ValueError, match="at least 1"):
        await poll_mailbox(settings, INITIAL, Recorder(), **options)


def test_fetch_response_uid_after_body() -> None:
    # imaplib's data for a FETCH response that puts UID after BODY[], with an unrequested
    # flag update and a UID that was not requested.
    data = [
        (b"1 (BODY[] {5}", b"first"),
        b" UID 11)",
        b"2 (FLAGS (\\Seen) UID 12)",
        (b"3 (UID 13 BODY[] {6}", b"second"),
        b")",
        (b"4 (UID 99 BODY[] {5}", b"other"),
        b")",
    ]

    assert imap._parse_bodies(data, {11, 12, 13}) == {11: b"first", 13: b"second"}


async def test_poll_rejects_wrong_password(imap_mailbox: TestMailbox) -> None:
    settings = imap_mailbox.settings(password="wrong-password-for-test")

    with pytest.raises(ImapAuthError) as raised:
        await poll_mailbox(settings, INITIAL, Recorder())

    assert "Authentication failed" in str(raised.value)
    assert "wrong-password-for-test" not in str(raised.value)


async def test_poll_auth_unavailable_is_temporary(imap_server: DovecotServer) -> None:
    state = MailboxState(uidvalidity=7, last_uid=42)
    settings = imap_server.settings(username=UNAVAILABLE_USERNAME, password="any-password")

    with pytest.raises(ImapTemporaryError) as raised:
        await poll_mailbox(settings, state, Recorder())

    assert "[UNAVAILABLE]" in str(raised.value)
    assert raised.value.state == state


async def test_poll_unknown_mailbox(imap_server: DovecotServer) -> None:
    settings = imap_server.settings("does-not-exist")

    with pytest.raises(ImapMailboxError) as raised:
        await poll_mailbox(settings, INITIAL, Recorder())

    assert "does-not-exist" in str(raised.value)
    with pytest.raises(ImapMailboxError):
        await check_connection(settings)


async def test_poll_nothing_listening(imap_server: DovecotServer) -> None:
    state = MailboxState(uidvalidity=7, last_uid=42)
    settings = imap_server.settings(port=free_port(), timeout_seconds=2)

    with pytest.raises(ImapTemporaryError) as raised:
        await poll_mailbox(settings, state, Recorder())

    assert "connecting to 127.0.0.1" in str(raised.value)
    assert raised.value.state == state
    with pytest.raises(ImapTemporaryError):
        await check_connection(settings)


async def test_poll_mailbox_name_not_ascii(imap_server: DovecotServer) -> None:
    # The name has a space and a non-ASCII letter, so it needs quoting and modified UTF-7.
    client = imap_server.connect()
    try:
        assert client.create('"Kunden &AMQ-rger"')[0] == "OK"
        assert client.append('"Kunden &AMQ-rger"', None, None, corpus_message(0))[0] == "OK"
    finally:
        client.logout()

    recorder = Recorder()
    try:
        state = await poll_mailbox(imap_server.settings("Kunden Ärger"), INITIAL, recorder)
    finally:
        client = imap_server.connect()
        client.delete('"Kunden &AMQ-rger"')
        client.logout()

    assert [raw for _uid, raw in recorder.received] == [stored_form(corpus_message(0))]
    assert state.last_uid == 1


async def test_check_connection_counts_messages(imap_mailbox: TestMailbox) -> None:
    assert await check_connection(imap_mailbox.settings()) == 0

    append_corpus(imap_mailbox, range(3))

    assert await check_connection(imap_mailbox.settings()) == 3


async def test_login_with_non_ascii_password(imap_server: DovecotServer) -> None:
    settings = imap_server.settings(username=UTF8_USERNAME, password=imap_server.utf8_password)

    assert await check_connection(settings) == 0
    with pytest.raises(ImapAuthError):
        await check_connection(
            imap_server.settings(username=UTF8_USERNAME, password="pässwörd-wrong")
        )


async def test_current_state_skips_existing_mail(imap_mailbox: TestMailbox) -> None:
    settings = imap_mailbox.settings()
    empty = await current_state(settings)
    assert empty == MailboxState(uidvalidity=imap_mailbox.uidvalidity(), last_uid=0)

    uids = append_corpus(imap_mailbox, range(2))
    state = await current_state(settings)
    assert state == MailboxState(uidvalidity=imap_mailbox.uidvalidity(), last_uid=uids[-1])

    new_uid = imap_mailbox.append(corpus_message(2))
    recorder = Recorder()
    await poll_mailbox(settings, state, recorder)

    assert recorder.uids == [new_uid]


async def test_implicit_tls(imap_mailbox: TestMailbox) -> None:
    append_corpus(imap_mailbox, range(2))
    server = imap_mailbox.server
    settings = imap_mailbox.settings(port=server.tls_port, security="tls", verify_certificate=False)

    recorder = Recorder()
    await poll_mailbox(settings, INITIAL, recorder)

    assert [raw for _uid, raw in recorder.received] == [
        stored_form(corpus_message(0)),
        stored_form(corpus_message(1)),
    ]
    # The self-signed certificate does not verify against the system's CAs.
    with pytest.raises(ImapTlsError) as raised:
        await check_connection(imap_mailbox.settings(port=server.tls_port, security="tls"))
    assert "certificate verification failed" in str(raised.value)


async def test_starttls(imap_mailbox: TestMailbox) -> None:
    append_corpus(imap_mailbox, range(1))
    settings = imap_mailbox.settings(security="starttls", verify_certificate=False)

    assert await check_connection(settings) == 1
    with pytest.raises(ImapTlsError):
        await check_connection(imap_mailbox.settings(security="starttls"))


async def test_tls_to_cleartext_port_fails(imap_mailbox: TestMailbox) -> None:
    settings = imap_mailbox.settings(security="tls", verify_certificate=False, timeout_seconds=2)

    with pytest.raises(ImapTemporaryError) as raised:
        await check_connection(settings)

    assert raised.value.state is None
