"""WebSocket gateway (being built): delivers sequenced events to connected clients."""

from __future__ import annotations

from frontdesk.runtime import Runtime


class Gateway:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
