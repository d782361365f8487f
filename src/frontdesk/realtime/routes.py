"""The realtime endpoint: one WebSocket per client, served by the process's gateway."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from frontdesk.realtime.gateway import Gateway

router = APIRouter(tags=["realtime"])


@router.websocket("/realtime")
async def realtime(websocket: WebSocket) -> None:
    """Deliver live events; docs/realtime-protocol.md describes the protocol."""
    gateway: Gateway = websocket.app.state.gateway
    await gateway.serve(websocket)
