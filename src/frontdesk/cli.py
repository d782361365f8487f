"""The ``frontdesk`` command: serve, worker, migrate, create-admin, demo, backup, payments."""

from __future__ import annotations

import argparse
import asyncio
import base64
import getpass
import os
import secrets
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from frontdesk.config import Settings
from frontdesk.core.logging import configure_logging
from frontdesk.core.secrets import MissingSecretError

log = structlog.get_logger()


class CommandError(Exception):
    """An error the command reports in one line and exits with status 2."""


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    if getattr(args, "host", None):
        overrides["host"] = args.host
    if getattr(args, "port", None):
        overrides["port"] = args.port
    settings = Settings(**overrides)
    configure_logging(settings)
    return settings


def _migrate(settings: Settings) -> tuple[str | None, str | None]:
    """Migrate the database to the latest schema and return its revision before and after."""
    from frontdesk.core.migrate import upgrade
    from frontdesk.runtime import prepare_data_dir

    if settings.is_sqlite:
        try:
            prepare_data_dir(settings)
        except OSError as exc:
            reason = "it is a file" if settings.data_dir.is_file() else exc.strerror
            raise CommandError(
                f"cannot use {settings.data_dir} as the data folder ({reason}); "
                "set FRONTDESK_DATA_DIR to a folder this user may write to"
            ) from exc
    return upgrade(settings.resolved_database_url)


def _describe_email(settings: Settings) -> str:
    if settings.smtp_host:
        return f"SMTP {settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security.value})"
    return "local outbox (GET /api/v1/outbox; account email links are also printed here)"


def cmd_serve(args: argparse.Namespace) -> None:
    import uvicorn

    from frontdesk.app import create_app
    from frontdesk.email.service import check_email_settings

    settings = _settings(args)
    check_email_settings(settings)
    if settings.is_sqlite:
        _migrate(settings)
    app = create_app(settings, run_worker=not args.no_worker)
    runtime = app.state.runtime
    data = (
        settings.data_dir.resolve() if settings.is_sqlite else "PostgreSQL (FRONTDESK_DATABASE_URL)"
    )
    lines = [
        f"Frontdesk listening on http://{settings.host}:{settings.port}",
        f"  public URL: {settings.resolved_public_url}",
        f"  data:       {data}",
        f"  email:      {_describe_email(settings)}",
        f"  worker:     {'off (--no-worker)' if args.no_worker else 'in this process'}",
        f"  API docs:   {settings.resolved_public_url}/docs",
    ]
    if runtime.secrets.key_file is not None:
        lines.append(
            f"  keys:       {runtime.secrets.key_file} (generated; back it up with the database)"
        )
    lines.append("Press Ctrl-C to stop; jobs in flight are finished first.")
    print("\n".join(lines), flush=True)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        ws_max_size=1024 * 1024,
    )
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        # uvicorn re-raises the signal after its graceful shutdown has finished.
        pass
    print("Frontdesk stopped.", flush=True)


def cmd_worker(args: argparse.Namespace) -> None:
    from frontdesk import jobs as _jobs  # noqa: F401  (registers the handlers)
    from frontdesk.core.jobs import Worker
    from frontdesk.email.service import check_email_settings
    from frontdesk.runtime import build_runtime

    settings = _settings(args)
    check_email_settings(settings)

    async def run() -> None:
        runtime = build_runtime(settings)
        await runtime.start()
        worker = Worker(runtime, concurrency=args.concurrency)
        runtime.worker = worker
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        worker.start()
        print(f"Frontdesk worker {worker.name} running; Ctrl-C stops it after the jobs in flight.")
        await stop.wait()
        await worker.stop(settings.shutdown_grace_seconds)
        await runtime.close()

    asyncio.run(run())


def cmd_migrate(args: argparse.Namespace) -> None:
    settings = _settings(args)
    before, after = _migrate(settings)
    if before is None:
        print(f"Created the database schema at revision {after}.")
    elif before == after:
        print(f"The database is already at the latest schema (revision {after}).")
    else:
        print(f"Migrated the database from revision {before} to {after}.")


def cmd_create_admin(args: argparse.Namespace) -> None:
    from frontdesk.auth.admin import create_instance_admin
    from frontdesk.core.uow import unit_of_work
    from frontdesk.runtime import build_runtime

    settings = _settings(args)
    if settings.is_sqlite:
        _migrate(settings)
    password = args.password or os.environ.get("FRONTDESK_ADMIN_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            raise CommandError("set --password or FRONTDESK_ADMIN_PASSWORD when not on a terminal")
        password = getpass.getpass("Password for the instance administrator: ")

    async def run() -> None:
        runtime = build_runtime(settings)
        try:
            async with unit_of_work(runtime) as uow:
                await create_instance_admin(
                    uow, email=args.email, password=password, full_name=args.name
                )
        finally:
            await runtime.close()

    asyncio.run(run())
    print(f"Instance administrator {args.email} is ready; log in with POST /api/v1/auth/token.")


def cmd_demo(args: argparse.Namespace) -> None:
    from frontdesk.demo import DemoFailed, fill_demo_workspace

    settings = _settings(args)
    # One log line per sample request would bury the summary.
    configure_logging(settings.model_copy(update={"log_level": "WARNING"}))
    if settings.is_sqlite:
        _migrate(settings)
    try:
        summary = asyncio.run(
            fill_demo_workspace(settings, email=args.email, password=args.password)
        )
    except DemoFailed as exc:
        raise CommandError(str(exc)) from exc
    print(summary)


def cmd_backup(args: argparse.Namespace) -> None:
    from frontdesk.core.backup import backup_sqlite

    settings = _settings(args)
    if not settings.is_sqlite:
        raise CommandError(
            "backup copies the embedded SQLite database; on Postgres use pg_dump or your "
            "provider's backups"
        )
    source = Path(settings.resolved_database_url.split("///", 1)[1])
    if not source.exists():
        raise CommandError(f"no database at {source}; start the server once first")
    pages = backup_sqlite(source, Path(args.file))
    print(f"Copied {source} to {args.file} ({pages} pages), consistent as of now.")


def cmd_storage_check(args: argparse.Namespace) -> None:
    from frontdesk.storage.consistency import PathsDisagree, format_report, run_check

    try:
        report = asyncio.run(run_check(_settings(args), fix=args.fix))
    except PathsDisagree as exc:
        raise CommandError(str(exc)) from exc
    print(format_report(report, fix=args.fix))
    if report.missing_blobs or (report.orphan_blobs and not args.fix):
        raise SystemExit(1)


def cmd_payments_reconcile(args: argparse.Namespace) -> None:
    import uuid
    from datetime import date

    from frontdesk.payments.stripe.reconcile import format_report, run_reconcile

    try:
        workspace_id = uuid.UUID(args.workspace)
    except ValueError as exc:
        raise CommandError(f"--workspace: '{args.workspace}' is not a workspace id (UUID)") from exc
    try:
        since = date.fromisoformat(args.since) if args.since else None
    except ValueError as exc:
        raise CommandError(f"--since: '{args.since}' is not a date (YYYY-MM-DD)") from exc
    report = asyncio.run(run_reconcile(_settings(args), workspace_id, since=since))
    print(format_report(report))
    if report.differences:
        raise SystemExit(1)


def cmd_generate_secrets(_args: argparse.Namespace) -> None:
    print(f"FRONTDESK_SECRET_KEY={secrets.token_urlsafe(48)}")
    print(f"FRONTDESK_ENCRYPTION_KEYS=k1:{base64.b64encode(os.urandom(32)).decode()}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frontdesk",
        description="Frontdesk: enquiries, inbox, email and live updates for small businesses. "
        "Settings come from FRONTDESK_* environment variables and .env (docs/configuration.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP and WebSocket server")
    serve.add_argument("--host", help="address to listen on (default FRONTDESK_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default FRONTDESK_PORT or 8000)")
    serve.add_argument("--no-worker", action="store_true", help="do not run background jobs here")
    serve.set_defaults(handler=cmd_serve)

    worker = commands.add_parser("worker", help="run background jobs and the scheduler")
    worker.add_argument("--concurrency", type=int, default=4, help="jobs run at once (default 4)")
    worker.set_defaults(handler=cmd_worker)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(handler=cmd_migrate)

    admin = commands.add_parser("create-admin", help="create or promote an instance administrator")
    admin.add_argument("email")
    admin.add_argument("--name", default="Administrator", help="full name of a new account")
    admin.add_argument(
        "--password", help="password (default: FRONTDESK_ADMIN_PASSWORD or a prompt)"
    )
    admin.set_defaults(handler=cmd_create_admin)

    demo = commands.add_parser("demo", help="fill a workspace with sample forms and enquiries")
    demo.add_argument("--email", default="demo@example.com", help="login of the demo owner")
    demo.add_argument("--password", default="demo-password", help="password of the demo owner")
    demo.set_defaults(handler=cmd_demo)

    backup = commands.add_parser("backup", help="copy the embedded database safely while it runs")
    backup.add_argument("file", help="destination file; overwritten if it exists")
    backup.set_defaults(handler=cmd_backup)

    storage = commands.add_parser("storage", help="maintain stored files")
    storage_commands = storage.add_subparsers(dest="storage_command", required=True)
    check = storage_commands.add_parser(
        "check", help="report blobs without a row and rows without a blob (exit 1 if any)"
    )
    check.add_argument("--fix", action="store_true", help="delete orphan blobs (never rows)")
    check.set_defaults(handler=cmd_storage_check)

    payments = commands.add_parser("payments", help="check payments against Stripe")
    payments_commands = payments.add_subparsers(dest="payments_command", required=True)
    reconcile = payments_commands.add_parser(
        "reconcile",
        help="list differences between Stripe's payment intents, refunds and subscriptions "
        "and our records (exit 1 if any); changes nothing",
    )
    reconcile.add_argument("--workspace", required=True, help="id of the workspace to check")
    reconcile.add_argument(
        "--since", help="only Stripe objects created on or after this date (YYYY-MM-DD)"
    )
    reconcile.set_defaults(handler=cmd_payments_reconcile)

    generate = commands.add_parser(
        "generate-secrets", help="print new FRONTDESK_SECRET_KEY and FRONTDESK_ENCRYPTION_KEYS"
    )
    generate.set_defaults(handler=cmd_generate_secrets)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (CommandError, MissingSecretError, ValueError) as exc:
        print(f"frontdesk {args.command}: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    except KeyboardInterrupt:
        raise SystemExit(130) from None
