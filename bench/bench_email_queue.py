"""Emails per second through the durable queue against a bare aiosmtplib loop, in one run.

Both paths deliver the same number of messages to the same local SMTP sink (aiosmtpd on
127.0.0.1, accepting everything):

- Frontdesk: ``queue_email`` stores each message and its ``email.send`` job in one
  transaction (in batches of 100), and the job worker, as ``frontdesk serve`` runs it,
  delivers them over SMTP: claim, attempt count, MIME build, send, mark sent. The clock runs
  from the first enqueue until the sink has every message.
- Baseline: one loop that builds each message with the standard library and sends it with
  ``aiosmtplib.send``, one connection per message as Frontdesk does.

    python bench/bench_email_queue.py              # 2,000 messages
    python bench/bench_email_queue.py --smoke      # 20, to check that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import socket
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from frontdesk import jobs as _jobs  # noqa: F401  (registers every job handler)
from frontdesk.config import Settings
from frontdesk.core.jobs import Worker
from frontdesk.core.logging import configure_logging
from frontdesk.core.migrate import upgrade
from frontdesk.core.uow import unit_of_work
from frontdesk.email.service import queue_email
from frontdesk.runtime import build_runtime

HOST = "127.0.0.1"
BATCH = 100


class CountingSink:
    """An SMTP handler that accepts every message and counts them."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.count += 1
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def wait_for(sink: CountingSink, total: int) -> None:
    try:
        async with asyncio.timeout(600):
            while sink.count < total:  # noqa: ASYNC110  (the sink counts in its own thread)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise SystemExit(f"only {sink.count} of {total} messages arrived") from None


async def frontdesk_rate(settings: Settings, sink: CountingSink, count: int) -> float:
    runtime = build_runtime(settings)
    await runtime.start()
    worker = Worker(runtime)
    sink.count = 0
    started = time.perf_counter()
    worker.start()
    try:
        for first in range(0, count, BATCH):
            async with unit_of_work(runtime) as uow:
                for index in range(first, min(first + BATCH, count)):
                    await queue_email(
                        uow,
                        kind="enquiry_acknowledgement",
                        to=f"client-{index}@example.org",
                        subject=f"We received your enquiry {index}",
                        text="Thank you, we will answer soon.",
                        html="<p>Thank you, we will answer soon.</p>",
                        workspace_id=None,
                    )
            worker.wake()
        await wait_for(sink, count)
        elapsed = time.perf_counter() - started
    finally:
        await worker.stop(10)
        await runtime.close()
    return count / elapsed


async def baseline_rate(port: int, sink: CountingSink, count: int) -> float:
    sink.count = 0
    started = time.perf_counter()
    for index in range(count):
        message = EmailMessage()
        message["From"] = "Frontdesk <frontdesk@localhost>"
        message["To"] = f"client-{index}@example.org"
        message["Subject"] = f"We received your enquiry {index}"
        message.set_content("Thank you, we will answer soon.")
        message.add_alternative("<p>Thank you, we will answer soon.</p>", subtype="html")
        await aiosmtplib.send(message, hostname=HOST, port=port)
    await wait_for(sink, count)
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="messages per path (default 2000)")
    parser.add_argument("--smoke", action="store_true", help="20 messages, to check that it runs")
    args = parser.parse_args()
    count = 20 if args.smoke else args.count

    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname=HOST, port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            data_dir = Path(scratch)
            database_url = f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
            upgrade(database_url)
            overrides: dict[str, Any] = {
                "database_url": database_url,
                "data_dir": data_dir,
                "secret_key": "bench-" + os.urandom(24).hex(),
                "encryption_keys": "b1:" + base64.b64encode(os.urandom(32)).decode(),
                "smtp_host": HOST,
                "smtp_port": port,
                "smtp_security": "none",
                "job_poll_interval_seconds": 0.05,
                "log_level": "WARNING",
                "log_format": "console",
            }
            settings = Settings(**overrides)
            configure_logging(settings)
            frontdesk = asyncio.run(frontdesk_rate(settings, sink, count))
        baseline = asyncio.run(baseline_rate(port, sink, count))
    finally:
        controller.stop()

    print(f"email delivery to a local SMTP sink, {count} messages, SQLite")
    print(f"  Frontdesk durable queue  {frontdesk:8.1f} messages/s")
    print(f"  bare aiosmtplib loop     {baseline:8.1f} messages/s")
    print(f"  ratio                    {frontdesk / baseline:8.2f}")


if __name__ == "__main__":
    main()
