"""The Redis that the tests use: FRONTDESK_TEST_REDIS_URL, or the local default port.

Tests that need it take the ``redis_url`` fixture, which skips them with the reason when
Redis does not respond, or fails them when CI requires it (FRONTDESK_TEST_REQUIRE=redis).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from conftest import skip_or_fail

DEFAULT_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = os.environ.get("FRONTDESK_TEST_REDIS_URL", DEFAULT_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except (OSError, redis.RedisError) as exc:
        skip_or_fail("redis", f"no Redis answers at {url}: {exc}")
    finally:
        client.close()
    yield url
