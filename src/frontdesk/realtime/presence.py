"""Staff presence: online, away or offline per member, over every connection of every process.

Each process tracks the status of its own connections and tells the others through the
broker: on every change, and again every ``interval`` seconds for every member it has
connections of. A remote process's report is forgotten when it was not repeated within
REMOTE_TIMEOUT_INTERVALS intervals, so a process that died stops counting.

A member is online when any connection anywhere is online, away when all are away, and has
no status without connections. Offline is announced only after ``grace`` seconds without any
connection, so a reload or a short network drop announces nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

# A remote report not repeated within this many intervals is forgotten.
REMOTE_TIMEOUT_INTERVALS = 3
# Members per broker message, which keeps a message well under the 8000-byte NOTIFY limit
# (about 50 bytes per member).
USERS_PER_MESSAGE = 100

Key = tuple[uuid.UUID, uuid.UUID]
Announce = Callable[[uuid.UUID, uuid.UUID, str], None]
Publish = Callable[[dict[str, Any]], None]


def combine(statuses: list[str]) -> str | None:
    if not statuses:
        return None
    return "online" if "online" in statuses else "away"


class PresenceTracker:
    """Presence of the members of every workspace that this process serves.

    ``announce(workspace_id, user_id, status)`` is called when a member's status as seen by
    the workspace changes; ``publish(message)`` sends a message to the other processes.
    Times are event loop times in seconds.
    """

    def __init__(
        self,
        node: str,
        *,
        grace: float,
        interval: float,
        announce: Announce,
        publish: Publish,
    ) -> None:
        self.node = node
        self.grace = grace
        self.interval = interval
        self._announce = announce
        self._publish = publish
        # Status of each local connection, by member.
        self._local: dict[Key, dict[str, str]] = {}
        # Status of each remote process's connections, by member: (status, time received).
        self._remote: dict[Key, dict[str, tuple[str, float]]] = {}
        self._announced: dict[Key, str] = {}
        self._offline_due: dict[Key, float] = {}
        self._last_republish = 0.0

    # Local connections

    def set_local(
        self,
        connection_id: str,
        workspace_id: uuid.UUID,
        user_id: uuid.UUID,
        status: str | None,
        now: float,
    ) -> None:
        """Record a local connection's status; None when the connection closed."""
        key = (workspace_id, user_id)
        connections = self._local.setdefault(key, {})
        before = combine(list(connections.values()))
        if status is None:
            connections.pop(connection_id, None)
        else:
            connections[connection_id] = status
        after = combine(list(connections.values()))
        if not connections:
            del self._local[key]
        if after != before:
            self._publish_users(workspace_id, {user_id: after or "offline"})
        self._refresh(key, now)

    # Remote processes

    def receive(self, message: dict[str, Any], now: float) -> None:
        """Apply a presence message of another process."""
        node = message.get("node")
        users = message.get("users")
        workspace_id = _uuid(message.get("workspace_id"))
        if not isinstance(node, str) or node == self.node or workspace_id is None:
            return
        if not isinstance(users, dict):
            return
        for raw_user, status in users.items():
            user_id = _uuid(raw_user)
            if user_id is None:
                continue
            key = (workspace_id, user_id)
            if status in ("online", "away"):
                self._remote.setdefault(key, {})[node] = (status, now)
            elif status == "offline":
                nodes = self._remote.get(key)
                if nodes is not None:
                    nodes.pop(node, None)
                    if not nodes:
                        del self._remote[key]
            self._refresh(key, now)

    def republish(self, now: float) -> None:
        """Publish the status of every local member, in messages of USERS_PER_MESSAGE."""
        self._last_republish = now
        by_workspace: dict[uuid.UUID, dict[uuid.UUID, str]] = {}
        for (workspace_id, user_id), connections in self._local.items():
            status = combine(list(connections.values()))
            if status is not None:
                by_workspace.setdefault(workspace_id, {})[user_id] = status
        for workspace_id, users in by_workspace.items():
            self._publish_users(workspace_id, users)

    # Time

    def tick(self, now: float) -> None:
        """Forget silent remote processes, announce due offlines and republish when due."""
        timeout = self.interval * REMOTE_TIMEOUT_INTERVALS
        for key in list(self._remote):
            nodes = self._remote[key]
            for node in [n for n, (_status, seen) in nodes.items() if now - seen > timeout]:
                del nodes[node]
            if not nodes:
                del self._remote[key]
                self._refresh(key, now)
        for key, due in list(self._offline_due.items()):
            if due <= now:
                del self._offline_due[key]
                if self._status(key) is None and self._announced.pop(key, None) is not None:
                    self._announce(key[0], key[1], "offline")
        if now - self._last_republish >= self.interval:
            self.republish(now)

    # Reading

    def snapshot(self, workspace_id: uuid.UUID) -> list[dict[str, str]]:
        """Return the announced status of every member of the workspace that has one."""
        return [
            {"user_id": str(user_id), "status": status}
            for (workspace, user_id), status in sorted(self._announced.items())
            if workspace == workspace_id
        ]

    # Internals

    def _status(self, key: Key) -> str | None:
        statuses = list(self._local.get(key, {}).values())
        statuses.extend(status for status, _seen in self._remote.get(key, {}).values())
        return combine(statuses)

    def _refresh(self, key: Key, now: float) -> None:
        status = self._status(key)
        if status is not None:
            self._offline_due.pop(key, None)
            if self._announced.get(key) != status:
                self._announced[key] = status
                self._announce(key[0], key[1], status)
        elif key in self._announced and key not in self._offline_due:
            self._offline_due[key] = now + self.grace

    def _publish_users(self, workspace_id: uuid.UUID, users: dict[uuid.UUID, str]) -> None:
        items = [(str(user_id), status) for user_id, status in users.items()]
        for start in range(0, len(items), USERS_PER_MESSAGE):
            self._publish(
                {
                    "kind": "presence",
                    "node": self.node,
                    "workspace_id": str(workspace_id),
                    "users": dict(items[start : start + USERS_PER_MESSAGE]),
                }
            )


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
