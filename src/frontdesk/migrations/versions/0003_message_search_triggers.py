"""message search triggers

On SQLite, triggers keep the FTS5 table of migration 0002 in step with message inserts,
edits and deletions, which the conversation service did with statements of its own.
PostgreSQL indexes the column itself and gets nothing. Written by hand;
scripts/regenerate-initial-migration.sh keeps it.

NOTE: message_id is an UNINDEXED FTS5 column, so the update trigger's DELETE scans the
FTS5 table on each edit or deletion. FTS5 rowids cannot follow conversation_messages rows,
whose implicit rowids VACUUM may renumber. For the same reason there is no trigger for
deleted rows, which would scan once per row: their full-text rows stay until
``search.prune_index`` runs.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INSERT_TRIGGER = "conversation_messages_fts_insert"
UPDATE_TRIGGER = "conversation_messages_fts_update"


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        f"CREATE TRIGGER {INSERT_TRIGGER} AFTER INSERT ON conversation_messages "
        "WHEN NEW.deleted_at IS NULL AND NEW.body != '' BEGIN "
        "INSERT INTO conversation_messages_fts (message_id, body) VALUES (NEW.id, NEW.body); "
        "END"
    )
    op.execute(
        f"CREATE TRIGGER {UPDATE_TRIGGER} AFTER UPDATE OF body, deleted_at "
        "ON conversation_messages BEGIN "
        "DELETE FROM conversation_messages_fts WHERE message_id = OLD.id; "
        "INSERT INTO conversation_messages_fts (message_id, body) "
        "SELECT NEW.id, NEW.body WHERE NEW.deleted_at IS NULL AND NEW.body != ''; "
        "END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(f"DROP TRIGGER {UPDATE_TRIGGER}")
    op.execute(f"DROP TRIGGER {INSERT_TRIGGER}")
