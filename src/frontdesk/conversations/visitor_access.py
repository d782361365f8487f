"""Access to the visitor API: CORS by the chat's allowed origins, the visitor token, limits.

Every visitor route loads its chat through ``load_chat``, which checks the browser's Origin,
and every route that needs a visitor through ``current_visitor``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from frontdesk.conversations import chat_service, chat_settings
from frontdesk.conversations.models import ChatSettings, ChatVisitor
from frontdesk.core.api import UowDep
from frontdesk.core.errors import Forbidden, NotFound, ProblemError
from frontdesk.core.origins import normalize_origin
from frontdesk.core.ratelimit import Limit
from frontdesk.core.uow import UnitOfWork

ALLOWED_METHODS = "GET, POST, PATCH"
ALLOWED_HEADERS = "Authorization, Content-Type"


class ChatCorsRoute(APIRoute):
    """A route whose responses, errors included, carry the CORS headers of its chat.

    The ``load_chat`` dependency stores the headers on ``request.state`` once it has
    checked the request's Origin, so a browser script can read the response, problems too.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except ProblemError as exc:
                # Raised again, so that the request's transaction still rolls back.
                exc.headers.update(_cors_headers(request))
                raise
            except StarletteHTTPException as exc:
                exc.headers = {**(exc.headers or {}), **_cors_headers(request)}
                raise
            except RequestValidationError as exc:
                # Request validation fails before the endpoint runs, so nothing is written
                # and the problem can be rendered here, where the headers are known.
                response = await request.app.exception_handlers[RequestValidationError](
                    request, exc
                )
            response.headers.update(_cors_headers(request))
            return response

        return handle


def _cors_headers(request: Request) -> dict[str, str]:
    headers: dict[str, str] = getattr(request.state, "chat_cors", {"Vary": "Origin"})
    return headers


PublicKeyPath = Annotated[
    str, Path(max_length=64, description="The chat's public key, from the chat settings.")
]
_bearer = HTTPBearer(auto_error=False, description="Visitor token from POST /chat/{key}/visitors")


def _own_origin(uow: UnitOfWork) -> str | None:
    try:
        return normalize_origin(uow.settings.resolved_public_url)
    except ValueError:
        return None


def request_origin(request: Request) -> str | None:
    """Return the origin the request was sent to, as a browser would write it."""
    try:
        return normalize_origin(f"{request.url.scheme}://{request.url.netloc}")
    except ValueError:
        return None


def origin_allowed(
    uow: UnitOfWork, settings: ChatSettings, origin: str, *, same_origin: str | None = None
) -> bool:
    """Tell whether a page of ``origin`` may use the chat.

    Besides the allowed origins, Frontdesk's own public URL and the origin the request was
    sent to (``same_origin``: a page served by Frontdesk itself, such as the demo) are allowed.
    """
    if not settings.allowed_origins:
        return True
    try:
        normalized = normalize_origin(origin)
    except ValueError:
        return False
    return normalized in settings.allowed_origins or normalized in (
        _own_origin(uow),
        same_origin,
    )


def _origin_rejected() -> Forbidden:
    return Forbidden(
        "This site may not use this chat; an admin can add its origin to the chat settings' "
        "allowed_origins.",
        code="origin_not_allowed",
    )


async def _load_settings(uow: UnitOfWork, public_key: str) -> ChatSettings:
    settings = await chat_settings.find_settings_by_key(uow, public_key)
    if settings is None:
        raise NotFound(
            "No website chat has this key; check the key in the widget's data-workspace attribute.",
            code="chat_not_found",
        )
    return settings


async def load_chat(public_key: PublicKeyPath, request: Request, uow: UowDep) -> ChatSettings:
    """Load the chat of the key and check the browser's Origin against it."""
    settings = await _load_settings(uow, public_key)
    origin = request.headers.get("origin")
    if origin is not None:
        if not origin_allowed(uow, settings, origin, same_origin=request_origin(request)):
            raise _origin_rejected()
        request.state.chat_cors = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": "Retry-After",
            "Vary": "Origin",
        }
    return settings


async def enabled_chat(
    settings: Annotated[ChatSettings, Depends(load_chat)],
) -> ChatSettings:
    chat_settings.ensure_enabled(settings)
    return settings


ChatDep = Annotated[ChatSettings, Depends(load_chat)]
EnabledChatDep = Annotated[ChatSettings, Depends(enabled_chat)]


async def current_visitor(
    settings: EnabledChatDep,
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ChatVisitor:
    token = credentials.credentials if credentials is not None else None
    if credentials is not None and credentials.scheme.lower() != "bearer":
        token = None
    return await chat_service.authenticate_visitor(uow, settings, token)


VisitorDep = Annotated[ChatVisitor, Depends(current_visitor)]


async def limit_writes(uow: UnitOfWork, visitor: ChatVisitor, ip: str) -> None:
    settings = uow.settings
    await uow.rt.limiter.check(
        (
            Limit("chat_write_visitor", settings.chat_writes_per_visitor_per_minute, 60),
            str(visitor.id),
        ),
        (Limit("chat_write_ip", settings.chat_writes_per_ip_per_minute, 60), ip),
    )


async def preflight_response(uow: UnitOfWork, request: Request, public_key: str) -> Response:
    """Respond to a CORS preflight. It succeeds for allowed origins even when the chat is off,
    so the widget can read the chat_disabled problem."""
    settings = await _load_settings(uow, public_key)
    origin = request.headers.get("origin")
    if origin is None or not origin_allowed(
        uow, settings, origin, same_origin=request_origin(request)
    ):
        raise _origin_rejected()
    method = request.headers.get("access-control-request-method", "").upper()
    if method not in ("GET", "POST", "PATCH"):
        raise Forbidden(
            f"The chat accepts {ALLOWED_METHODS}; {method or 'no method'} is not allowed.",
            code="method_not_allowed",
        )
    return Response(
        status_code=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Expose-Headers": "Retry-After",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        },
    )
