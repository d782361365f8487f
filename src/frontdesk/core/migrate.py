"""Run Alembic migrations from code, for the CLI, the server and the tests."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError as AlembicCommandError
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database to ``revision``, from outside any running event loop.

    Returns the database's revision before and after, None for a database without the schema.
    """
    config = alembic_config(database_url)
    before = current_revision(database_url)
    if before is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(before)
        except AlembicCommandError as exc:
            raise ValueError(
                f"the database is at schema revision {before}, which this version of "
                "Frontdesk does not know; run the newer version that migrated it"
            ) from exc
    command.upgrade(config, revision)
    return before, current_revision(database_url)


def current_revision(database_url: str) -> str | None:
    """Return the database's schema revision, or None when no migration has run on it."""

    async def read() -> str | None:
        engine = create_async_engine(database_url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: MigrationContext.configure(sync).get_current_revision()
                )
        finally:
            await engine.dispose()

    return asyncio.run(read())


def make_revision(database_url: str, message: str) -> None:
    command.revision(alembic_config(database_url), message=message, autogenerate=True)
