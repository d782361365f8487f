"""The frontdesk command on the embedded default, run as a user would run it."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from frontdesk.core.migrate import upgrade


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRONTDESK_")}
    env.update(
        {
            "FRONTDESK_DATA_DIR": str(data_dir),
            "FRONTDESK_ARGON2_MEMORY_KIB": "8",
            "FRONTDESK_ARGON2_TIME_COST": "1",
            "FRONTDESK_LOG_FORMAT": "json",
        }
    )
    env.update(extra)
    return env


def run_frontdesk(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "frontdesk", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"server exited early: {process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


@pytest.fixture
def served(tmp_path: Path) -> tuple[subprocess.Popen[str], str, Path]:
    data_dir = tmp_path / "data"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "frontdesk", "serve", "--port", str(port)],
        env=command_env(data_dir),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield process, url, data_dir
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_serve_embedded_default_and_ctrl_c(served: tuple[subprocess.Popen[str], str, Path]) -> None:
    process, url, data_dir = served
    signup = httpx.post(
        f"{url}/api/v1/auth/signup",
        json={
            "email": "owner@example.com",
            "password": "a long enough password",
            "full_name": "Owner",
            "workspace_name": "Studio",
        },
        timeout=10,
    )
    assert signup.status_code == 201
    assert (data_dir / "frontdesk.db").exists()
    assert (data_dir / "secret-keys.json").exists()

    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert f"Frontdesk listening on {url}" in output
    assert f"data:       {data_dir.resolve()}" in output
    assert "email:      local outbox" in output
    # The verification link of the embedded outbox is printed for a local user.
    assert "/verify-email?token=" in output
    assert '"event": "worker.stopped"' in output


def test_backup_while_serving(
    served: tuple[subprocess.Popen[str], str, Path], tmp_path: Path
) -> None:
    _process, url, data_dir = served
    response = httpx.post(
        f"{url}/api/v1/auth/signup",
        json={
            "email": "b@example.com",
            "password": "a long enough password",
            "full_name": "B",
            "workspace_name": "B",
        },
        timeout=10,
    )
    assert response.status_code == 201
    destination = tmp_path / "backup" / "copy.db"
    result = run_frontdesk("backup", str(destination), env=command_env(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    copy = sqlite3.connect(destination)
    try:
        assert copy.execute("SELECT email FROM users").fetchall() == [("b@example.com",)]
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        copy.close()


def test_demo_fills_workspace(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_frontdesk("demo", env=command_env(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Added 9 sample enquiries" in result.stdout
    assert "Website chat demo: http://localhost:8000/chat/demo" in result.stdout
    again = run_frontdesk("demo", env=command_env(data_dir), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "already has its sample data" in again.stdout
    # The forms are listed in the same order on every run.
    form_lines = [line for line in result.stdout.splitlines() if "/f/" in line]
    assert len(form_lines) == 2
    assert [line for line in again.stdout.splitlines() if "/f/" in line] == form_lines
    # The database contains personal data, so only its owner may read it.
    assert oct((data_dir / "frontdesk.db").stat().st_mode & 0o777) == "0o600"
    assert oct(data_dir.stat().st_mode & 0o777) == "0o700"
    database = sqlite3.connect(data_dir / "frontdesk.db")
    try:
        statuses = {row[0] for row in database.execute("SELECT status FROM enquiries")}
        assert {"new", "open", "awaiting_customer", "won", "lost", "closed"} <= statuses
        assert database.execute("SELECT count(*) FROM forms").fetchone() == (2,)
        assert database.execute("SELECT count(*) FROM contacts").fetchone() == (8,)
        assert database.execute("SELECT enabled FROM chat_settings").fetchall() == [(1,)]
    finally:
        database.close()


def test_demo_bad_login_is_one_line(tmp_path: Path) -> None:
    env = command_env(tmp_path / "data")

    short = run_frontdesk("demo", "--password", "short", env=env, cwd=tmp_path)
    filled = run_frontdesk("demo", env=env, cwd=tmp_path)
    other = run_frontdesk("demo", "--password", "another-password", env=env, cwd=tmp_path)

    assert short.returncode == 2
    assert short.stderr.strip() == (
        "frontdesk demo: error: POST /api/v1/auth/signup failed with status 422: "
        "password: The password must have at least 8 characters."
    )
    assert filled.returncode == 0, filled.stderr
    assert other.returncode == 2
    assert "Traceback" not in other.stderr
    assert "already has an account with another password" in other.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"FRONTDESK_ENV": "production", "FRONTDESK_SMTP_HOST": "127.0.0.1"},
            "FRONTDESK_SECRET_KEY",
        ),
        (
            {"FRONTDESK_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test"},
            "FRONTDESK_SECRET_KEY",
        ),
    ],
)
def test_serve_refuses_missing_secrets(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    result = run_frontdesk("serve", env=command_env(tmp_path / "data", **extra), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "data" / "secret-keys.json").exists()


def test_serve_refuses_outbox_in_production(tmp_path: Path) -> None:
    extra = {
        "FRONTDESK_ENV": "production",
        "FRONTDESK_SECRET_KEY": "k" * 40,
        "FRONTDESK_ENCRYPTION_KEYS": "k1:" + "A" * 43 + "=",
    }
    result = run_frontdesk("serve", env=command_env(tmp_path / "data", **extra), cwd=tmp_path)
    assert result.returncode == 2
    assert "SMTP" in result.stderr


def test_create_admin_then_login(tmp_path: Path) -> None:
    env = command_env(tmp_path / "data", FRONTDESK_ADMIN_PASSWORD="admin password 1")
    result = run_frontdesk("create-admin", "Root@Example.com", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    database = sqlite3.connect(tmp_path / "data" / "frontdesk.db")
    try:
        rows = database.execute("SELECT email, is_instance_admin FROM users").fetchall()
    finally:
        database.close()
    assert rows == [("root@example.com", 1)]


def test_worker_sends_queued_email_and_stops(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = command_env(data_dir)
    assert run_frontdesk("migrate", env=env, cwd=tmp_path).returncode == 0
    # The demo runs no worker, so its acknowledgements wait in the queue.
    assert run_frontdesk("demo", env=env, cwd=tmp_path).returncode == 0
    database = sqlite3.connect(data_dir / "frontdesk.db")
    try:
        queued = database.execute(
            "SELECT count(*) FROM email_messages WHERE status = 'queued'"
        ).fetchone()[0]
    finally:
        database.close()
    assert queued > 0

    worker = subprocess.Popen(
        [sys.executable, "-m", "frontdesk", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        remaining = queued
        while remaining and time.monotonic() < deadline:
            time.sleep(0.2)
            database = sqlite3.connect(data_dir / "frontdesk.db")
            try:
                remaining = database.execute(
                    "SELECT count(*) FROM email_messages WHERE status = 'queued'"
                ).fetchone()[0]
            finally:
                database.close()
        assert remaining == 0
        worker.send_signal(signal.SIGINT)
        output, _ = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    assert worker.returncode == 0, output
    assert '"event": "worker.stopped"' in output


def test_migrate_reports_revisions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = command_env(data_dir)
    created = run_frontdesk("migrate", env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "Created the database schema at revision 0003." in created.stdout

    again = run_frontdesk("migrate", env=env, cwd=tmp_path)
    assert "already at the latest schema (revision 0003)" in again.stdout

    older_dir = tmp_path / "older"
    older_dir.mkdir()
    upgrade(f"sqlite+aiosqlite:///{older_dir / 'frontdesk.db'}", "0002")
    migrated = run_frontdesk("migrate", env=command_env(older_dir), cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert "Migrated the database from revision 0002 to 0003." in migrated.stdout


def test_migrate_errors_are_one_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    result = run_frontdesk("migrate", env=command_env(not_a_folder), cwd=tmp_path)
    assert result.returncode == 2
    assert "as the data folder (it is a file)" in result.stderr
    assert "Traceback" not in result.stderr

    data_dir = tmp_path / "data"
    env = command_env(data_dir)
    assert run_frontdesk("migrate", env=env, cwd=tmp_path).returncode == 0
    database = sqlite3.connect(data_dir / "frontdesk.db")
    try:
        database.execute("UPDATE alembic_version SET version_num = '9999'")
        database.commit()
    finally:
        database.close()
    newer = run_frontdesk("migrate", env=env, cwd=tmp_path)
    assert newer.returncode == 2
    assert "schema revision 9999, which this version of Frontdesk does not know" in newer.stderr
    assert "Traceback" not in newer.stderr
