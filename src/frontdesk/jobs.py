"""Import every domain's job handlers so that workers know them all."""

from frontdesk.core import maintenance  # noqa: F401
