"""Dependencies shared by every router: the runtime and the request's unit of work."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from frontdesk.core.http import client_ip
from frontdesk.core.uow import UnitOfWork
from frontdesk.runtime import Runtime

_READ_METHODS = frozenset({"GET", "HEAD"})
_READ_ONLY = "_frontdesk_read_only"
_GROUP_COMMIT = "_frontdesk_group_commit"
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


# The dependencies below are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread switch on every request.
async def get_runtime(connection: HTTPConnection) -> Runtime:
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def get_uow(connection: HTTPConnection) -> UnitOfWork:
    """Open the request's unit of work, which commits before the response is sent.

    The commit, or the rollback when the handler raised, runs on FastAPI's exit stack for
    the handler call, where a ``yield`` dependency with ``scope="function"`` would run it.
    Pushing the exit callback directly skips the context manager and cancel-scope wrappers
    that FastAPI puts around a ``yield`` dependency, which cost about 0.1 ms a request.
    """
    stack: AsyncExitStack | None = connection.scope.get("fastapi_function_astack")
    if stack is None:
        raise RuntimeError(
            "The request scope has no 'fastapi_function_astack' exit stack; this FastAPI "
            "version is not supported, install the version that pyproject.toml allows."
        )
    runtime: Runtime = connection.app.state.runtime
    endpoint = connection.scope.get("endpoint")
    if getattr(endpoint, _GROUP_COMMIT, False) is True:
        sessionmaker = runtime.autocommit_sessionmaker
    elif _reads_only(connection, endpoint):
        sessionmaker = runtime.read_sessionmaker
    else:
        sessionmaker = runtime.sessionmaker
    uow = UnitOfWork(runtime, sessionmaker())
    stack.push_async_exit(uow.finish)
    return uow


def read_only(endpoint: _Endpoint) -> _Endpoint:
    """Mark a GET route whose handler only reads, so its unit of work takes no write lock.

    On SQLite the request then reads in a deferred transaction, on connections that reject
    writes (``query_only``), so a long read such as a search or a report neither waits for
    the process's writers nor blocks them. Without the mark a request's transaction starts
    with ``BEGIN IMMEDIATE`` and may write. PostgreSQL uses one engine for both.
    """
    setattr(endpoint, _READ_ONLY, True)
    return endpoint


def writes_in_group(endpoint: _Endpoint) -> _Endpoint:
    """Mark a route whose handler writes only through ``runtime.group_commit``.

    Its own unit of work then only reads (the login check, say), each statement on its own
    without a transaction, so the request takes no write lock before its writes join a
    group transaction. The handler calls ``UnitOfWork.release_connection`` before it waits
    for the group, whose transaction needs a connection from the same pool.
    """
    setattr(endpoint, _GROUP_COMMIT, True)
    return endpoint


def _reads_only(connection: HTTPConnection, endpoint: object) -> bool:
    if connection.scope.get("method") not in _READ_METHODS:
        return False
    return getattr(endpoint, _READ_ONLY, False) is True


async def get_client_ip(request: Request, runtime: Annotated[Runtime, Depends(get_runtime)]) -> str:
    return client_ip(request, runtime.settings.trusted_proxies)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
# The commit happens when the handler returns, before the response is sent, so a client
# never sees success for a change that failed to commit.
UowDep = Annotated[UnitOfWork, Depends(get_uow)]
ClientIpDep = Annotated[str, Depends(get_client_ip)]
