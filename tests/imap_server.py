"""A real IMAP server for tests: Dovecot on 127.0.0.1, with its own configuration.

``imap_server`` (session scope) starts one Dovecot per test process, under a temporary
directory, on free ports: a cleartext port (STARTTLS offered, cleartext login allowed) and an
implicit-TLS port with a self-signed certificate generated here. ``imap_mailbox`` creates an
empty mailbox for one test and deletes it afterwards. Import both into a test module.

Dovecot runs as the current user, or as ``nobody`` when the tests run as root, because its
login processes refuse to run as root. When the ``dovecot`` binary is missing or the server
does not start, the tests skip, or fail when FRONTDESK_TEST_REQUIRE names ``imap``.
"""

from __future__ import annotations

import datetime as dt
import grp
import imaplib
import ipaddress
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import skip_or_fail
from frontdesk.email.imap import ImapSettings
from smtp_server import free_port

HOST = "127.0.0.1"
USERNAME = "frontdesk"
# A second user whose password is not ASCII, to test login with SASL PLAIN.
UTF8_USERNAME = "frontdesk-utf8"
# A user whose login fails with "[UNAVAILABLE] Temporary authentication failure".
UNAVAILABLE_USERNAME = "frontdesk-unavailable"
STARTUP_SECONDS = 15.0

# A checkpassword program for Dovecot's checkpassword passdb (doc.dovecot.org, 2.3,
# "CheckPassword"). The user name and password arrive on file descriptor 3, separated by NUL
# bytes. Exit status 1 means the login failed and 111 means a temporary problem.
_CHECKPASSWORD = """\
#!/bin/sh
user=$(head -c 1024 <&3 | tr '\\000' '\\n' | head -n 1)
if [ "$user" = "{username}" ]; then
  exit 111
fi
exit 1
"""

_CONFIG = """\
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = frontdesk-test-{instance}
log_path = {folder}/dovecot.log
protocols = imap
listen = {host}
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
# Allow cleartext login on the port without TLS. Dovecot 2.4 renames the option to
# auth_allow_cleartext.
disable_plaintext_auth = no
auth_mechanisms = plain login
# Dovecot 2.3 waits 2 seconds after a failed login by default, and the tests need no delay.
auth_failure_delay = 0
ssl = yes
ssl_cert = <{folder}/cert.pem
ssl_key = <{folder}/key.pem
mail_location = maildir:{folder}/mail/%u
mail_fsync = never
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
# Logins that the passwd file does not accept (an unknown user or a wrong password) reach
# this script. It fails them, or reports a temporary failure for UNAVAILABLE_USERNAME.
passdb {{
  driver = checkpassword
  args = {folder}/checkpassword
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {folder}/passwd
  default_fields = uid={uid} gid={gid} home={folder}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {host}
    port = {port}
  }}
  inet_listener imaps {{
    address = {host}
    port = {tls_port}
    ssl = yes
  }}
}}
# No growing delay for logins from an IP after failed ones (doc.dovecot.org/2.3,
# "Authentication penalty support"): the tests log in right after a wrong password.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service stats {{
  chroot =
}}
"""


def _write_certificate(folder: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _find_dovecot() -> str | None:
    # Debian installs it to /usr/sbin, which is not on the PATH of ordinary users.
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def _version(binary: str) -> str:
    try:
        result = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(version unknown: {exc})"
    return result.stdout.strip() or "(version unknown)"


def _run_as() -> tuple[str, str, int, int]:
    """Return the user, group, uid and gid that Dovecot runs as."""
    if os.geteuid() == 0:
        entry = pwd.getpwnam("nobody")
    else:
        entry = pwd.getpwuid(os.geteuid())
    return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name, entry.pw_uid, entry.pw_gid


class DovecotServer:
    """A Dovecot instance of its own. ``start()`` raises ``RuntimeError`` when it fails."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.host = HOST
        self.port = free_port()
        self.tls_port = free_port()
        # Test passwords are generated per run, and the second one is not ASCII.
        self.password = secrets.token_urlsafe(16)
        self.utf8_password = "pässwörd-" + secrets.token_urlsafe(8)
        self.folder = Path(tempfile.mkdtemp(prefix="frontdesk-dovecot-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / "dovecot.log"

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def start(self) -> None:
        user, group, uid, gid = _run_as()
        for name in ("run", "state", "mail", "home"):
            (self.folder / name).mkdir()
        _write_certificate(self.folder)
        passwd = (
            f"{USERNAME}:{{PLAIN}}{self.password}::::::\n"
            f"{UTF8_USERNAME}:{{PLAIN}}{self.utf8_password}::::::\n"
        )
        (self.folder / "passwd").write_text(passwd, encoding="utf-8")
        checkpassword = self.folder / "checkpassword"
        checkpassword.write_text(_CHECKPASSWORD.format(username=UNAVAILABLE_USERNAME))
        checkpassword.chmod(0o755)
        config = _CONFIG.format(
            folder=self.folder,
            instance=uuid.uuid4().hex[:8],
            host=self.host,
            port=self.port,
            tls_port=self.tls_port,
            user=user,
            group=group,
            uid=uid,
            gid=gid,
        )
        (self.folder / "dovecot.conf").write_text(config, encoding="utf-8")
        if os.geteuid() == 0:
            for path in [self.folder, *self.folder.rglob("*")]:
                os.chown(path, uid, gid)
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.folder / "dovecot.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            user=uid if os.geteuid() == 0 else None,
            group=gid if os.geteuid() == 0 else None,
            # Its own process group, so that stop() reaches the login and mail processes too.
            start_new_session=True,
        )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read() if self._process.stderr else b""
                raise RuntimeError(
                    f"dovecot exited with status {self._process.returncode}: "
                    f"{stderr.decode(errors='replace')} {self._log_tail()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as probe:
                    if probe.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not answer within {STARTUP_SECONDS} s: {self._log_tail()}")

    def stop(self) -> None:
        if self._process is not None:
            # Dovecot's master stops its child processes on SIGTERM.
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        shutil.rmtree(self.folder, ignore_errors=True)

    def connect(self) -> imaplib.IMAP4:
        """A logged-in client on the cleartext port, to set up and inspect mailboxes."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(USERNAME, self.password)
        return client

    def settings(self, mailbox: str = "INBOX", **overrides: Any) -> ImapSettings:
        """Settings for the poller: the cleartext port, no TLS, the test user."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "security": "none",
            "username": USERNAME,
            "password": self.password,
            "mailbox": mailbox,
            "timeout_seconds": 10,
        }
        values.update(overrides)
        return ImapSettings(**values)


def _check(result: tuple[str, list[Any]]) -> list[Any]:
    kind, data = result
    assert kind == "OK", data
    return data


class TestMailbox:
    """A mailbox of the test user, with helpers that go through IMAP like a mail client."""

    __test__ = False

    def __init__(self, server: DovecotServer, name: str) -> None:
        self.server = server
        # The name is ASCII without spaces, so it needs no quoting or encoding.
        self.name = name

    def settings(self, **overrides: Any) -> ImapSettings:
        return self.server.settings(self.name, **overrides)

    def append(self, raw: bytes, *, flags: str = "") -> int:
        """Append one message and return the UID the server gave it (UIDPLUS, RFC 4315)."""
        client = self.server.connect()
        try:
            data = _check(client.append(self.name, flags or None, None, raw))
        finally:
            client.logout()
        match = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0])
        assert match is not None, data
        return int(match.group(1))

    def flags(self) -> dict[int, frozenset[str]]:
        """Return the flags of every message by UID, read without changing them.

        ``\\Recent`` is left out: it is a session flag (RFC 3501, 2.3.2), not one that a mail
        client sets.
        """
        client = self.server.connect()
        try:
            _check(client.select(self.name, readonly=True))
            data = _check(client.uid("FETCH", "1:*", "(UID FLAGS)"))
        finally:
            client.logout()
        flags: dict[int, frozenset[str]] = {}
        for line in data:
            if not isinstance(line, bytes):
                continue
            match = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)|FLAGS \(([^)]*)\) UID (\d+)", line)
            assert match is not None, line
            if match.group(1):
                uid, names = match.group(1), match.group(2)
            else:
                uid, names = match.group(4), match.group(3)
            flags[int(uid)] = frozenset(names.decode().split()) - {"\\Recent"}
        return flags

    def expunge(self, uids: list[int]) -> None:
        """Delete messages for good, leaving gaps in the UIDs (UID EXPUNGE, RFC 4315)."""
        client = self.server.connect()
        try:
            _check(client.select(self.name))
            uid_set = ",".join(str(uid) for uid in uids)
            _check(client.uid("STORE", uid_set, "+FLAGS.SILENT", "(\\Deleted)"))
            _check(client.uid("EXPUNGE", uid_set))
        finally:
            client.logout()

    def uidvalidity(self) -> int:
        client = self.server.connect()
        try:
            kind, data = client.status(self.name, "(UIDVALIDITY)")
        finally:
            client.logout()
        assert kind == "OK", data
        match = re.search(rb"UIDVALIDITY (\d+)", data[0])
        assert match is not None, data
        return int(match.group(1))

    def create(self) -> None:
        client = self.server.connect()
        try:
            _check(client.create(self.name))
        finally:
            client.logout()

    def delete(self) -> None:
        client = self.server.connect()
        try:
            _check(client.delete(self.name))
        finally:
            client.logout()

    def recreate(self) -> None:
        """Delete the mailbox and create it again, which gives it a new UIDVALIDITY."""
        self.delete()
        self.create()


_server: DovecotServer | None = None


def start_server() -> DovecotServer:
    """Start Dovecot once per test process, or skip (fail when required) when it cannot."""
    global _server
    if _server is not None:
        return _server
    binary = _find_dovecot()
    if binary is None:
        skip_or_fail("imap", "the dovecot binary is not installed (Debian: dovecot-imapd)")
    version = _version(binary)
    if not version.startswith("2.3."):
        # NOTE: Dovecot 2.4 (Debian 13) rejects 2.3 configuration files; _CONFIG needs a 2.4
        # variant before the tests can run there.
        skip_or_fail("imap", f"dovecot {version} found, but the test configuration is for 2.3")
    server = DovecotServer(binary)
    try:
        server.start()
    except (OSError, RuntimeError, KeyError) as exc:
        server.stop()
        skip_or_fail("imap", f"dovecot did not start: {exc}")
    _server = server
    return server


@pytest.fixture(scope="session")
def imap_server() -> Iterator[DovecotServer]:
    server = start_server()
    yield server
    global _server
    server.stop()
    _server = None


@pytest.fixture
def imap_mailbox(imap_server: DovecotServer) -> Iterator[TestMailbox]:
    """An empty mailbox for one test, deleted afterwards."""
    mailbox = TestMailbox(imap_server, f"test-{uuid.uuid4().hex[:12]}")
    mailbox.create()
    try:
        yield mailbox
    finally:
        mailbox.delete()
