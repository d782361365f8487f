"""The router guards skip included routers without changing which route serves a request."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.routing import Match

from conftest import make_settings
from frontdesk.app import create_app

PARAMETER = re.compile(r"\{([^}:]+)(?::([^}]+))?\}")
ODD_PATHS = [
    "/",
    "/api",
    "/api/",
    "/api/v1",
    "/api/v1/",
    "/api/v2/me",
    "/nothing/here",
    "/webhooks",
    "/webhooks/",
    "/chat/",
    "//api/v1/me",
]


def _sample(match: re.Match[str]) -> str:
    convertor = match.group(2)
    if convertor == "uuid":
        return str(uuid.UUID(int=7))
    if convertor == "path":
        return "nested/part"
    if convertor == "int":
        return "7"
    return "sample-7"


def _concrete_paths(app: FastAPI) -> list[str]:
    paths: list[str] = []
    for route in app.router.routes:
        candidates = getattr(route, "effective_candidates", None)
        inner = candidates() if candidates else [route]
        paths.extend(PARAMETER.sub(_sample, getattr(r, "path", "/")) for r in inner)
    return paths


def _scope(path: str, method: str, kind: str) -> dict[str, Any]:
    return {
        "type": kind,
        "path": path,
        "root_path": "",
        "method": method,
        "headers": [],
        "query_string": b"",
    }


def _unguarded(route: Any, scope: dict[str, Any]) -> Match:
    # The class's method, not the guard set on the instance.
    match, _ = type(route).matches(route, scope)
    return match


def test_guards_installed(tmp_path: Path) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", tmp_path), run_worker=False)

    guarded = [route for route in app.router.routes if "matches" in vars(route)]

    assert len(guarded) >= 30


def test_guards_keep_every_match(tmp_path: Path) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", tmp_path), run_worker=False)
    paths = _concrete_paths(app) + ODD_PATHS
    trailing = [path + "/" for path in paths if not path.endswith("/")]

    differences = []
    for path in paths + trailing:
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            for kind in ("http", "websocket"):
                for route in app.router.routes:
                    guarded, _ = route.matches(_scope(path, method, kind))
                    if guarded != _unguarded(route, _scope(path, method, kind)):
                        differences.append((kind, method, path, getattr(route, "path", route)))

    assert differences == []


def test_guard_rejects_other_prefixes(tmp_path: Path) -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:", tmp_path), run_worker=False)
    scope = _scope("/webhooks/stripe/some-token", "POST", "http")

    matching = [route for route in app.router.routes if route.matches(dict(scope))[0] != Match.NONE]

    assert len(matching) == 1


async def test_late_route_served(client: httpx.AsyncClient) -> None:
    response = await client.post("/webhooks/stripe/no-such-token", content=b"{}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
