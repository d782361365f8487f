"""The migration history builds exactly the schema that the models declare."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from frontdesk.conversations.search import is_search_schema_object
from frontdesk.models import Base


def _modelled(name: str | None, type_: str, parent_names: Any) -> bool:
    # Migration 0002 adds full-text search objects that no model declares.
    return not is_search_schema_object(name)


async def test_models_match_migrations(database_url: str) -> None:
    engine = create_async_engine(database_url)

    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_name": _modelled}
        )
        return list(compare_metadata(context, Base.metadata))

    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    assert differences == [], (
        "Models and migrations differ; add a migration "
        f"(or run scripts/regenerate-initial-migration.sh before the first release): {differences}"
    )
