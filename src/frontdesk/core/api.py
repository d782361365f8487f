"""Dependencies shared by every router: the runtime and the request's unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from frontdesk.core.http import client_ip
from frontdesk.core.uow import UnitOfWork, unit_of_work
from frontdesk.runtime import Runtime


# The dependencies below are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread switch on every request.
async def get_runtime(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_uow(runtime: Annotated[Runtime, Depends(get_runtime)]) -> AsyncIterator[UnitOfWork]:
    """Yield the request's unit of work; it commits before the response is sent."""
    async with unit_of_work(runtime) as uow:
        yield uow


async def get_client_ip(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> str:
    return client_ip(request, runtime.settings.trusted_proxies)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# scope="function" makes the commit happen when the handler returns, before the response
# is sent, so a client never sees success for a change that failed to commit.
UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
ClientIpDep = Annotated[str, Depends(get_client_ip)]
