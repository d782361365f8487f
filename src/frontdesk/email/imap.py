"""Poll a mailbox over IMAP and hand each new message to the caller, in UID order.

The poller only reads and never deletes, moves or flags mail. It selects the mailbox read-only
(EXAMINE) and fetches with ``BODY.PEEK[]``, so the ``\\Seen`` flag stays as it was.

Delivery contract of ``poll_mailbox``:

- The caller stores the returned ``MailboxState`` (UIDVALIDITY and the last UID handled) and
  passes it to the next poll. Messages are handed over in ascending UID order, and
  ``last_uid`` advances only after ``handle`` returns for that message.
- When ``handle`` raises an ``Exception``, the poll stops and returns the state before that
  message, so the next poll starts with it again. A message is never skipped because its
  handling failed.
- When the connection fails (refused, dropped, timed out), ``ImapTemporaryError.state`` is the
  state reached so far. Every message up to ``state.last_uid`` was handled and the rest were
  not, so storing it loses nothing and repeats nothing.
- Connection failures never repeat a message, because ``handle`` does not run while the poller
  waits for the server. Messages are handed over again in three cases, so ``handle`` must be
  idempotent, for example by skipping a Message-ID already stored for the workspace:
  a handler that raised after doing part of its work sees that message again; when the poll
  returns no state (the process dies, or the task is cancelled during or after a ``handle``
  call), the caller keeps the previous state and every message of that poll comes again;
  and after a UIDVALIDITY change, described next, the whole mailbox comes again.
- When the server's UIDVALIDITY differs from the stored one, UIDs from before no longer name
  the same messages (RFC 3501, section 2.3.1.1), so the poll starts over at UID 1 and logs
  ``email.imap.uidvalidity_changed``. Messages handled before the change are handed over
  again, and the caller drops them by Message-ID.

The blocking ``imaplib`` client runs in worker threads (``asyncio.to_thread``). Its socket
timeout (``timeout_seconds``) bounds each read and write, not the whole poll.
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import structlog
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    field_validator,
    model_validator,
)

from frontdesk.core.hosts import normalize_host

log = structlog.get_logger()

ImapSecurity = Literal["tls", "starttls", "none"]
MessageHandler = Callable[[int, bytes], Awaitable[None]]

DEFAULT_PORTS: dict[str, int] = {"tls": 993, "starttls": 143, "none": 143}
# The widest UID range searched with one command; see ``_search_new_uids``.
MAX_SEARCH_WINDOW = 50_000
# Upper bound in bytes on the messages fetched with one command. imaplib keeps a whole FETCH
# response in memory, so this bounds memory use. A single larger message is fetched alone.
MAX_BATCH_BYTES = 20 * 1024 * 1024

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
# Response codes of a NO reply that mean "try again later" (RFC 5530, section 3): the
# server's backend is down, or another session is using the mailbox.
_TEMPORARY_CODES = ("[UNAVAILABLE]", "[INUSE]")


class ImapSettings(BaseModel):
    """Connection settings of the mailbox that Frontdesk polls."""

    model_config = ConfigDict(extra="forbid")

    host: Annotated[str, AfterValidator(normalize_host)] = Field(min_length=1, max_length=253)
    # Filled in by ``security`` when left out: 993 for implicit TLS, 143 otherwise.
    port: int | None = Field(default=None, strict=True, ge=1, le=65535)
    # "none" sends the password unencrypted, so it suits only a server on a trusted network.
    security: ImapSecurity = "tls"
    username: str = Field(min_length=1, max_length=320)
    password: SecretStr = Field(min_length=1, max_length=1024)
    mailbox: str = Field(default="INBOX", min_length=1, max_length=1000)
    verify_certificate: StrictBool = True
    timeout_seconds: float = Field(default=30.0, strict=True, gt=0, le=300)

    @field_validator("host", "username", "mailbox")
    @classmethod
    def _reject_control_characters(cls, value: str) -> str:
        # A CR or LF would end the IMAP command line early and inject another command.
        if _CONTROL_CHARACTERS.search(value):
            raise ValueError("must not contain control characters")
        return value

    @field_validator("password")
    @classmethod
    def _reject_control_characters_in_password(cls, value: SecretStr) -> SecretStr:
        if _CONTROL_CHARACTERS.search(value.get_secret_value()):
            raise ValueError("must not contain control characters")
        return value

    @model_validator(mode="after")
    def _fill_default_port(self) -> ImapSettings:
        if self.port is None:
            self.port = DEFAULT_PORTS[self.security]
        return self


@dataclass(frozen=True)
class MailboxState:
    """Progress of polling in one mailbox, which the caller stores between polls."""

    # UIDVALIDITY of the mailbox when ``last_uid`` was handled, or None before the first poll.
    uidvalidity: int | None
    # UID of the last message handled, or 0 when none has been.
    last_uid: int


class ImapError(Exception):
    """Polling failed. ``str()`` contains no password, but it may quote the server's reply."""


class ImapAuthError(ImapError):
    """The server rejected the credentials or cannot accept them, so retrying will not help."""


class ImapMailboxError(ImapError):
    """The mailbox does not exist or cannot be selected."""


class ImapTlsError(ImapError):
    """TLS setup failed: the certificate did not verify, or the server lacks STARTTLS."""


class ImapTemporaryError(ImapError):
    """The connection failed or timed out, or the server failed a command. Retry later."""

    def __init__(self, message: str, *, state: MailboxState | None = None) -> None:
        super().__init__(message)
        # The state reached before the failure, set by ``poll_mailbox``. Other calls leave None.
        self.state = state


@dataclass
class _Session:
    client: imaplib.IMAP4
    uidvalidity: int
    exists: int


def encode_mailbox_name(name: str) -> str:
    """Encode a mailbox name in IMAP's modified UTF-7 (RFC 3501, section 5.1.3)."""
    parts: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            utf16 = "".join(pending).encode("utf-16-be")
            encoded = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            parts.append(f"&{encoded}-")
            pending.clear()

    for character in name:
        if " " <= character <= "~":
            flush()
            parts.append("&-" if character == "&" else character)
        else:
            pending.append(character)
    flush()
    return "".join(parts)


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _text(data: list[Any]) -> str:
    """Return the server's text from a command response, for error messages."""
    pieces = []
    for item in data:
        if isinstance(item, bytes):
            pieces.append(item.decode("utf-8", "replace"))
        elif isinstance(item, str):
            pieces.append(item)
    return " ".join(pieces).strip() or "no text"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, imaplib.IMAP4.error):
        # imaplib passes the server's reply as bytes for some commands, such as LOGIN.
        return _text(list(exc.args))
    return f"{type(exc).__name__}: {exc}"


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not settings.verify_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _port(settings: ImapSettings) -> int:
    return settings.port or DEFAULT_PORTS[settings.security]


def _connect(settings: ImapSettings) -> imaplib.IMAP4:
    """Open the connection and read the greeting, with TLS as the settings ask."""
    host, port, timeout = settings.host, _port(settings), settings.timeout_seconds
    try:
        if settings.security == "tls":
            return imaplib.IMAP4_SSL(
                host, port, ssl_context=_tls_context(settings), timeout=timeout
            )
        client = imaplib.IMAP4(host, port, timeout=timeout)
    except ssl.SSLCertVerificationError as exc:
        raise ImapTlsError(
            f"certificate verification failed for {host}:{port}: {exc.verify_message}"
        ) from exc
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapTemporaryError(f"connecting to {host}:{port} failed: {_describe(exc)}") from exc
    if settings.security == "starttls":
        try:
            if "STARTTLS" not in client.capabilities:
                raise ImapTlsError(f"{host}:{port} does not offer STARTTLS")
            client.starttls(ssl_context=_tls_context(settings))
        except ssl.SSLCertVerificationError as exc:
            _disconnect(client)
            raise ImapTlsError(
                f"certificate verification failed for {host}:{port}: {exc.verify_message}"
            ) from exc
        except (OSError, imaplib.IMAP4.error) as exc:
            _disconnect(client)
            raise ImapTemporaryError(
                f"STARTTLS with {host}:{port} failed: {_describe(exc)}"
            ) from exc
        except ImapTlsError:
            _disconnect(client)
            raise
    return client


def _login(client: imaplib.IMAP4, settings: ImapSettings) -> None:
    username = settings.username
    password = settings.password.get_secret_value()
    if "LOGINDISABLED" in client.capabilities:
        raise ImapAuthError(
            "the server does not allow login without TLS, so set security to tls or starttls"
        )
    try:
        if username.isascii() and password.isascii():
            # imaplib quotes the password but sends the user name as it is.
            client.login(_quote(username), password)
        elif "AUTH=PLAIN" in client.capabilities:
            # imaplib sends LOGIN in ASCII only, but SASL PLAIN carries UTF-8 (RFC 4616).
            payload = f"\0{username}\0{password}".encode()
            client.authenticate("PLAIN", lambda _challenge: payload)
        else:
            raise ImapAuthError(
                "the user name or password contains non-ASCII characters, which need "
                "AUTH=PLAIN, and the server does not offer it"
            )
    except imaplib.IMAP4.abort as exc:
        raise ImapTemporaryError(f"login failed: {_describe(exc)}") from exc
    except imaplib.IMAP4.error as exc:
        reply = _describe(exc)
        if reply.startswith(_TEMPORARY_CODES):
            raise ImapTemporaryError(f"login failed: {reply}") from exc
        # A NO reply (RFC 3501, 6.2.3): wrong user name or password, or login not allowed.
        raise ImapAuthError(f"login rejected by the server: {reply}") from exc


def _select(client: imaplib.IMAP4, mailbox: str) -> _Session:
    try:
        kind, data = client.select(_quote(encode_mailbox_name(mailbox)), readonly=True)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        # A BAD reply, for a name the server does not accept.
        raise ImapMailboxError(f"selecting mailbox {mailbox!r} failed: {_describe(exc)}") from exc
    if kind != "OK":
        reply = _text(data)
        if reply.startswith(_TEMPORARY_CODES):
            raise ImapTemporaryError(f"selecting mailbox {mailbox!r} failed: {reply}")
        raise ImapMailboxError(f"selecting mailbox {mailbox!r} failed: {reply}")
    exists = int(data[0]) if data and data[0] else 0
    _code, values = client.response("UIDVALIDITY")
    if not values or values[0] is None:
        raise ImapMailboxError(f"the server sent no UIDVALIDITY for mailbox {mailbox!r}")
    return _Session(client=client, uidvalidity=int(values[0]), exists=exists)


def _open_session(settings: ImapSettings) -> _Session:
    """Connect, log in and select the mailbox read-only. Blocks, so run it in a worker thread."""
    client = _connect(settings)
    try:
        _login(client, settings)
        return _select(client, settings.mailbox)
    except (OSError, imaplib.IMAP4.abort) as exc:
        _disconnect(client)
        raise ImapTemporaryError(f"opening the mailbox failed: {_describe(exc)}") from exc
    except BaseException:
        _disconnect(client)
        raise


def _disconnect(client: imaplib.IMAP4) -> None:
    """Close the socket without waiting for the server. Any thread may call this."""
    try:
        # Shutting the socket down first wakes a worker thread blocked in a read on it.
        client.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        client.shutdown()
    except OSError:
        pass


def _logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (OSError, imaplib.IMAP4.error) as exc:
        # The messages were handled already, so a failed logout changes nothing. Only the
        # error type is logged because a reply read out of step may quote a message.
        log.info("email.imap.logout_failed", error_type=type(exc).__name__)
        _disconnect(client)


def _command(client: imaplib.IMAP4, command: str, *args: str) -> list[Any]:
    """Run a UID command and return its data. Every failure raises ImapTemporaryError."""
    try:
        kind, data = client.uid(command, *args)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapTemporaryError(f"UID {command} failed: {_describe(exc)}") from exc
    if kind != "OK":
        raise ImapTemporaryError(f"UID {command} failed: {_text(data)}")
    return data


def _search_uids(client: imaplib.IMAP4, uid_range: str) -> list[int]:
    data = _command(client, "SEARCH", "UID", uid_range)
    uids: set[int] = set()
    for line in data:
        if isinstance(line, bytes):
            uids.update(int(value) for value in line.split())
    return sorted(uids)


def _highest_uid(client: imaplib.IMAP4) -> int:
    # "*" is the highest UID in use, and the search is empty for an empty mailbox.
    return max(_search_uids(client, "*"), default=0)


def _search_new_uids(client: imaplib.IMAP4, last_uid: int, limit: int) -> list[int]:
    """Return up to ``limit`` UIDs above ``last_uid``, in ascending order.

    The search runs over UID windows instead of ``last_uid+1:*`` because imaplib rejects a
    response line over 1,000,000 bytes, which a SEARCH result of about 125,000 seven-digit
    UIDs reaches. Each window at most ``MAX_SEARCH_WINDOW`` UIDs wide keeps the line below that.
    """
    highest = _highest_uid(client)
    found: list[int] = []
    start = last_uid + 1
    width = min(max(limit, 1000), MAX_SEARCH_WINDOW)
    while start <= highest and len(found) < limit:
        end = min(start + width - 1, highest)
        # The filter is a guard: for "n:*" servers return the last message even when n is
        # above its UID (RFC 3501, 6.4.8), and some may do the same for explicit ranges.
        found.extend(uid for uid in _search_uids(client, f"{start}:{end}") if start <= uid <= end)
        start = end + 1
        # Sparse UIDs, as after many deletions, widen the window; dense ones stop early.
        width = min(width * 2, MAX_SEARCH_WINDOW)
    return found[:limit]


def _uid_set(uids: list[int]) -> str:
    """Write ascending UIDs as an IMAP sequence set, with runs as ranges: ``1:4,7``."""
    ranges: list[str] = []
    start = previous = uids[0]
    for uid in uids[1:]:
        if uid != previous + 1:
            ranges.append(str(start) if start == previous else f"{start}:{previous}")
            start = uid
        previous = uid
    ranges.append(str(start) if start == previous else f"{start}:{previous}")
    return ",".join(ranges)


def _fetch_sizes(client: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
    data = _command(client, "FETCH", _uid_set(uids), "(UID RFC822.SIZE)")
    sizes: dict[int, int] = {}
    for item in data:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        if uid and size:
            sizes[int(uid.group(1))] = int(size.group(1))
    return sizes


def _parse_bodies(data: list[Any], requested: set[int]) -> dict[int, bytes]:
    """Return the ``BODY[]`` literal of each requested UID in FETCH response data.

    imaplib gives each literal as a pair (text before it, literal), followed by the text
    after it as bytes. The server may put the UID item before or after ``BODY[]``, so both
    are searched. Other FETCH responses, such as unrequested flag updates, are skipped.
    """
    bodies: dict[int, bytes] = {}
    # A literal whose UID comes after it, in the next item.
    unclaimed: bytes | None = None
    for item in data:
        if isinstance(item, tuple):
            before, literal = item
            unclaimed = None
            if b"BODY[]" not in before:
                continue
            match = _UID.search(before)
            if match is None:
                unclaimed = literal
            elif int(match.group(1)) in requested:
                bodies[int(match.group(1))] = literal
        elif isinstance(item, bytes) and unclaimed is not None:
            match = _UID.search(item)
            if match is not None and int(match.group(1)) in requested:
                bodies[int(match.group(1))] = unclaimed
            unclaimed = None
    return bodies


def _fetch_bodies(client: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    """Fetch the raw messages of ``uids``. A UID missing from the result was expunged."""
    data = _command(client, "FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
    return _parse_bodies(data, set(uids))


def _batches(uids: list[int], sizes: dict[int, int], batch_size: int) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= batch_size or total + size > MAX_BATCH_BYTES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch


def _starting_state(state: MailboxState, uidvalidity: int) -> MailboxState:
    if state.uidvalidity == uidvalidity:
        return state
    if state.uidvalidity is not None:
        log.warning(
            "email.imap.uidvalidity_changed",
            previous_uidvalidity=state.uidvalidity,
            previous_last_uid=state.last_uid,
            uidvalidity=uidvalidity,
        )
    return MailboxState(uidvalidity=uidvalidity, last_uid=0)


async def _hand_over(
    session: _Session,
    start: MailboxState,
    uids: list[int],
    handle: MessageHandler,
    batch_size: int,
) -> tuple[MailboxState, int]:
    """Fetch ``uids`` in batches and hand each message to ``handle``, in order.

    Returns the state reached and how many messages were handled. Stops at the first message
    whose handler raises. On ``ImapTemporaryError``, sets its ``state`` to the state reached.
    """
    reached, handled = start, 0
    try:
        sizes = await asyncio.to_thread(_fetch_sizes, session.client, uids) if uids else {}
        for batch in _batches(uids, sizes, batch_size):
            bodies = await asyncio.to_thread(_fetch_bodies, session.client, batch)
            for uid in batch:
                raw = bodies.get(uid)
                if raw is None:
                    log.warning("email.imap.message_missing", uid=uid)
                else:
                    try:
                        await handle(uid, raw)
                    except Exception as exc:
                        # Not re-raised: the state returned makes the next poll retry this
                        # message. The handler logs its own details. The error text may quote
                        # the message, so only the error type is logged here.
                        log.error(
                            "email.imap.handler_failed",
                            uid=uid,
                            uidvalidity=session.uidvalidity,
                            error_type=type(exc).__name__,
                        )
                        return reached, handled
                    handled += 1
                reached = MailboxState(uidvalidity=session.uidvalidity, last_uid=uid)
    except ImapTemporaryError as exc:
        exc.state = reached
        raise
    return reached, handled


async def poll_mailbox(
    settings: ImapSettings,
    state: MailboxState,
    handle: MessageHandler,
    *,
    batch_size: int = 50,
    max_messages: int = 500,
) -> MailboxState:
    """Hand each message newer than ``state`` to ``handle`` and return the new state.

    ``handle(uid, raw)`` receives the message exactly as the server stores it (RFC 5322 bytes
    with CRLF line endings). At most ``max_messages`` messages are handed over per call, read
    with at most ``batch_size`` messages (and ``MAX_BATCH_BYTES``) per FETCH command. The
    module docstring describes the delivery contract.

    Raises ``ImapAuthError``, ``ImapMailboxError`` or ``ImapTlsError`` when the settings need
    fixing, and ``ImapTemporaryError`` (with ``state`` set) when a later poll may succeed.
    """
    if batch_size < 1 or max_messages < 1:
        raise ValueError("batch_size and max_messages must be at least 1")
    try:
        session = await asyncio.to_thread(_open_session, settings)
    except ImapTemporaryError as exc:
        exc.state = state
        raise
    start = _starting_state(state, session.uidvalidity)
    try:
        try:
            uids = await asyncio.to_thread(
                _search_new_uids, session.client, start.last_uid, max_messages
            )
        except ImapTemporaryError as exc:
            exc.state = start
            raise
        reached, handled = await _hand_over(session, start, uids, handle, batch_size)
    except BaseException:
        # Also on cancellation: closing the socket ends a worker thread blocked on it.
        _disconnect(session.client)
        raise
    await asyncio.to_thread(_logout, session.client)
    if reached != state:
        # Logged only on progress, because an idle mailbox is polled again and again.
        log.info(
            "email.imap.polled",
            uidvalidity=reached.uidvalidity,
            last_uid=reached.last_uid,
            handled=handled,
        )
    return reached


async def check_connection(settings: ImapSettings) -> int:
    """Log in, select the mailbox and return how many messages it contains.

    Raises the same errors as ``poll_mailbox``.
    """
    session = await asyncio.to_thread(_open_session, settings)
    await asyncio.to_thread(_logout, session.client)
    return session.exists


async def current_state(settings: ImapSettings) -> MailboxState:
    """Return the state after the newest message, so that polling skips existing mail.

    A workspace that connects a mailbox with years of mail can store this state before its
    first poll, and then only messages that arrive afterwards become enquiries.
    """

    def read_state() -> MailboxState:
        session = _open_session(settings)
        try:
            highest = _highest_uid(session.client)
        except BaseException:
            _disconnect(session.client)
            raise
        _logout(session.client)
        return MailboxState(uidvalidity=session.uidvalidity, last_uid=highest)

    return await asyncio.to_thread(read_state)
