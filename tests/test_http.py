"""HTTP plumbing: client address behind proxies, body limits, request ids, metrics."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from frontdesk.core.http import client_ip
from frontdesk.core.logging import redact_path

PROXIES = [ip_network("10.0.0.0/8"), ip_network("198.51.100.0/24")]


def request_from(peer: str, forwarded: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers})


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.5", None, "203.0.113.5"),
        # Not from a trusted proxy: the header is ignored.
        ("203.0.113.5", "192.0.2.1", "203.0.113.5"),
        ("10.1.2.3", "192.0.2.1", "192.0.2.1"),
        # A client-supplied left part is skipped: the first untrusted hop from the right wins.
        ("10.1.2.3", "6.6.6.6, 192.0.2.1, 10.9.9.9", "192.0.2.1"),
        ("10.1.2.3", "not-an-address", "10.1.2.3"),
        ("10.1.2.3", "", "10.1.2.3"),
    ],
)
def test_client_ip(peer: str, forwarded: str | None, expected: str) -> None:
    assert client_ip(request_from(peer, forwarded), PROXIES) == expected


def test_client_ip_without_trusted_proxies() -> None:
    assert client_ip(request_from("10.1.2.3", "192.0.2.1"), []) == "10.1.2.3"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"max_body_bytes": 1000}


async def test_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", content=b"x" * 2000, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "payload_too_large"


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(5):
            yield b"y" * 400

    response = await client.post(
        "/api/v1/auth/token", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_request_id_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["x-request-id"]) == 32


async def test_metrics_exposed(client: httpx.AsyncClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert (
        'frontdesk_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}'
        in response.text
    )


async def test_metrics_full_route_template(client: httpx.AsyncClient) -> None:
    # The route sits in a router included under /api/v1, and its path has a parameter.
    await client.get("/api/v1/conversations/not-a-uuid/messages")
    await client.get("/no/such/page")
    response = await client.get("/metrics")
    assert (
        'frontdesk_http_request_duration_seconds_count{method="GET",'
        'route="/api/v1/conversations/{conversation_id}/messages",status="401"}' in response.text
    )
    assert 'route="unmatched",status="404"' in response.text


async def test_metrics_route_of_early_rejection(client: httpx.AsyncClient) -> None:
    # The text check rejects these before routing.
    conversation = "/api/v1/conversations/01890a5d-ac96-774b-bcce-b302099a8057/messages"
    rejected = await client.post(
        conversation,
        content=b'{"body": "a\\u0000"}',
        headers={"content-type": "application/json"},
    )
    assert rejected.status_code == 422
    await client.get("/api/v1/conversations/search?q=%FF")
    response = await client.get("/metrics")
    assert (
        'method="POST",route="/api/v1/conversations/{conversation_id}/messages",status="422"'
        in response.text
    )
    assert 'method="GET",route="/api/v1/conversations/search",status="422"' in response.text


async def test_unhandled_error_counted_as_500(app: FastAPI) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    app.add_api_route("/test-failure", fail)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://frontdesk.test") as http:
        response = await http.get("/test-failure", headers={"X-Request-ID": "trace-500"})
        metrics = await http.get("/metrics")

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.json()["request_id"] == "trace-500"
    assert response.headers["x-request-id"] == "trace-500"
    assert (
        'frontdesk_http_request_duration_seconds_count{method="GET",route="/test-failure",'
        'status="500"}' in metrics.text
    )
    assert 'route="/test-failure",status="0"' not in metrics.text


async def test_openapi_and_docs_served(client: httpx.AsyncClient) -> None:
    spec = await client.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    assert spec.json()["info"]["title"] == "Frontdesk"
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_form_encoded_body_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token", data={"grant_type": "password", "username": "a"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "Content-Type: application/json" in response.json()["detail"]


async def test_wrong_method_names_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/auth/signup")
    assert response.status_code == 405
    assert response.json()["detail"] == "DELETE is not allowed on /api/v1/auth/signup; use POST."


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/conversations", "GET, POST"),
        ("PUT", "/api/v1/forms/01a242cf-2ef3-7317-a8ce-e8c709823530", "DELETE, GET, PATCH"),
    ],
)
async def test_wrong_method_names_every_method(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    listed = allowed.rsplit(", ", 1)
    assert response.json()["detail"] == (
        f"{method} is not allowed on {path}; use {' or '.join(listed)}."
    )


async def test_oversized_body_has_request_id(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        content=b"x" * 2000,
        headers={"content-type": "application/json", "X-Request-ID": "big-1"},
    )
    assert response.status_code == 413
    assert response.json()["request_id"] == "big-1"


async def test_garbage_token_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    assert (
        response.json()["detail"]
        == "The access token is invalid; log in with POST /api/v1/auth/token to get one."
    )


async def test_malformed_email_message(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/signup",
        json={
            "email": "no-at-sign",
            "password": "long enough pass",
            "full_name": "A",
            "workspace_name": "B",
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0] == {
        "field": "email",
        "message": "Enter a valid email address, like name@example.com.",
        "code": "value_error",
    }


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/e/u/eyJwIjoidW5zdWJzY3JpYmUifQ.sig", "/e/u/[token]"),
        ("/e/c/abc.def", "/e/c/[token]"),
        ("/webhooks/email/postmark/SECRET/inbound", "/webhooks/email/postmark/[token]/inbound"),
        ("/storage/links/SECRET", "/storage/links/[token]"),
        ("/api/v1/enquiries", "/api/v1/enquiries"),
    ],
)
def test_request_log_hides_tokens(path: str, logged: str) -> None:
    assert redact_path(path) == logged


async def test_broken_json_names_body(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/signup", content=b'{"email": ', headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [("body", "json_invalid")]
