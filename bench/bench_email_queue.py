"""Emails per second through the durable queue against a bare aiosmtplib loop, in one run.

Both paths deliver the same number of messages to the same local SMTP sink (aiosmtpd on
127.0.0.1 in a process of its own, accepting everything):

- Frontdesk: ``queue_email`` stores each message and its ``email.send`` job in one
  transaction (in batches of 100), and the job worker, as ``frontdesk serve`` runs it,
  delivers them over SMTP: claim, attempt count, MIME build, send, mark sent. The clock runs
  from the first enqueue until the sink has every message.
- Baseline: one loop that builds each message with the standard library and sends it with
  ``aiosmtplib.send``, one connection per message as Frontdesk does.

    python bench/bench_email_queue.py              # 2,000 messages
    python bench/bench_email_queue.py --smoke      # 20, to check that it runs
    python bench/bench_email_queue.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import socket
import tempfile
import time
from email.message import EmailMessage
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as EventType
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
    """An SMTP handler that accepts every message and counts them in shared memory."""

    def __init__(self, counter: Synchronized[int]) -> None:
        self.counter = counter

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.counter.get_lock():
            self.counter.value += 1
        return "250 OK"


def run_sink(port: int, counter: Synchronized[int], stop: EventType) -> None:
    """Serve the sink in this (child) process until ``stop`` is set."""
    controller = Controller(CountingSink(counter), hostname=HOST, port=port)
    controller.start()
    stop.wait()
    controller.stop()


class Sink:
    """The SMTP sink in a process of its own, so that it takes no CPU from the paths measured."""

    def __init__(self) -> None:
        self.port = free_port()
        self._counter: Synchronized[int] = multiprocessing.Value("q", 0)
        self._stop = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=run_sink, args=(self.port, self._counter, self._stop), daemon=True
        )

    @property
    def count(self) -> int:
        return int(self._counter.value)

    def reset(self) -> None:
        with self._counter.get_lock():
            self._counter.value = 0

    def start(self) -> None:
        self._process.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("the SMTP sink did not start")

    def stop(self) -> None:
        self._stop.set()
        self._process.join(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


async def wait_for(sink: Sink, total: int) -> None:
    try:
        async with asyncio.timeout(600):
            while sink.count < total:  # noqa: ASYNC110  (the sink counts in its own thread)
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise SystemExit(f"only {sink.count} of {total} messages arrived") from None


async def frontdesk_rate(settings: Settings, sink: Sink, count: int, concurrency: int) -> float:
    runtime = build_runtime(settings)
    await runtime.start()
    worker = Worker(runtime, concurrency=concurrency)
    sink.reset()
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


async def baseline_rate(port: int, sink: Sink, count: int) -> float:
    sink.reset()
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
    parser.add_argument("--database-url", help="default: a new SQLite file in a temporary folder")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="jobs the worker runs at once (default 4)"
    )
    args = parser.parse_args()
    count = 20 if args.smoke else args.count

    sink = Sink()
    sink.start()
    port = sink.port
    try:
        with tempfile.TemporaryDirectory() as scratch:
            data_dir = Path(scratch)
            database_url = args.database_url or f"sqlite+aiosqlite:///{data_dir / 'bench.db'}"
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
            frontdesk = asyncio.run(frontdesk_rate(settings, sink, count, args.concurrency))
        baseline = asyncio.run(baseline_rate(port, sink, count))
    finally:
        sink.stop()

    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"email delivery to a local SMTP sink, {count} messages, {backend}, "
        f"worker concurrency {args.concurrency}"
    )
    print(f"  Frontdesk durable queue  {frontdesk:8.1f} messages/s")
    print(f"  bare aiosmtplib loop     {baseline:8.1f} messages/s")
    print(f"  ratio                    {frontdesk / baseline:8.2f}")


if __name__ == "__main__":
    main()
